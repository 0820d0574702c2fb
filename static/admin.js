/* Users module: ask before a destructive action (CSP allows no inline script).
   A form with data-confirm submits with confirm=yes only after the browser's confirm()
   returns true; without this script the server asks on a page whose button reads OK. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) {
      return;
    }
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var field = form.querySelector('input[name="confirm"]');
    if (field) {
      field.value = "yes";
    }
  });
})();
