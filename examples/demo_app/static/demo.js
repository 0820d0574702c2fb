/* The demo's own script: the countdown and the /userinfo button. */
(function () {
  "use strict";
  var left = document.getElementById("token-remaining");
  if (left) {
    var expiresAt = Number(left.getAttribute("data-expires-at")) * 1000;
    setInterval(function () {
      left.textContent = String(Math.max(0, Math.round((expiresAt - Date.now()) / 1000)));
    }, 1000);
  }
  var button = document.getElementById("call-userinfo");
  var out = document.getElementById("userinfo-result");
  if (button) {
    button.addEventListener("click", function () {
      fetch("/api/userinfo", {headers: {Accept: "application/json"}}).then(function (resp) {
        if (resp.status === 401) { SessionRefresh.expired(); return null; }
        return resp.json();
      }).then(function (body) {
        if (body) out.textContent = JSON.stringify(body, null, 2);
      });
    });
  }
})();
