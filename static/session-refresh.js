/* Authserver session-refresh pop-up: no dependencies, no framework, no eval.
 * <script src=".../static/session-refresh.js" data-expires-at="1767225600" data-refresh-url="/login"></script>
 * or SessionRefresh.init({expiresAt, refreshUrl}); call SessionRefresh.expired() on a 401. */
(function (w, d) {
  "use strict";
  var cfg = {refreshUrl: "/login", returnParam: "return_to", leeway: 0}, expiresAt = null,
      timer = null, box = null;

  function toMs(v) {
    if (v === null || v === undefined || v === "") return null;
    var n = Number(v);
    if (!isNaN(n)) return n < 1e12 ? n * 1000 : n;   // seconds or milliseconds since the epoch
    n = Date.parse(v);
    return isNaN(n) ? null : n;
  }

  function remaining() {
    return expiresAt === null ? null : Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  }

  function schedule() {
    clearTimeout(timer);
    if (expiresAt === null || box) return;
    var left = expiresAt - cfg.leeway * 1000 - Date.now();
    if (left <= 0) return expired();
    // Re-check at least every 30 s: timers stop while a laptop sleeps.
    timer = setTimeout(schedule, Math.min(left, 30000));
  }

  function el(tag, attrs, text) {
    var e = d.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  function refreshTarget() {
    var url = new URL(cfg.refreshUrl, w.location.href), l = w.location;
    url.searchParams.set(cfg.returnParam, l.pathname + l.search + l.hash);
    return url.href;
  }

  function onKey(e) {
    if (!box) return;
    var button = box.querySelector("button");
    if (e.key === "Escape") {           // never dismiss silently: say once why it stays
      e.preventDefault();
      var hint = box.querySelector(".sr-hint");
      if (!hint.textContent) hint.textContent = "This window stays open until you select Refresh.";
      button.focus();
    } else if (e.key === "Tab") {       // the dialog's only control keeps the focus
      e.preventDefault();
      button.focus();
    }
  }

  function onFocus(e) {
    if (box && !box.contains(e.target)) box.querySelector("button").focus();
  }

  function expired() {
    if (box) return;
    clearTimeout(timer);
    box = el("div", {"class": "sr-backdrop"});
    var dialog = el("div", {"class": "sr-dialog", role: "dialog", "aria-modal": "true",
      "aria-labelledby": "sr-title", "aria-describedby": "sr-text"});
    var button = el("button", {type: "button", "class": "sr-refresh"}, "Refresh");
    dialog.appendChild(el("h2", {id: "sr-title", "class": "sr-title"}, "Your session has expired"));
    dialog.appendChild(el("p", {id: "sr-text", "class": "sr-text"},
      "Select Refresh to continue where you were. It takes a moment and brings you back " +
      "to this page."));
    dialog.appendChild(el("p", {"class": "sr-hint", "aria-live": "polite"}));
    dialog.appendChild(button);
    box.appendChild(dialog);
    for (var i = 0; i < d.body.children.length; i++) {
      var c = d.body.children[i];
      c.setAttribute("inert", "");      // the page behind cannot be reached or read
      c.setAttribute("aria-hidden", "true");
    }
    d.body.appendChild(box);
    d.documentElement.classList.add("sr-open");
    button.addEventListener("click", function () {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      w.location.assign(refreshTarget());
    });
    d.addEventListener("keydown", onKey, true);
    d.addEventListener("focusin", onFocus, true);
    button.focus();
  }

  function init(options) {
    options = options || {};
    for (var k in options) if (k !== "expiresAt" && options[k] !== undefined) cfg[k] = options[k];
    if ("expiresAt" in options) expiresAt = toMs(options.expiresAt);
    schedule();
    return api;
  }

  function check() { if (d.visibilityState !== "hidden") schedule(); }

  var api = {init: init, expired: expired, remaining: remaining,
             setExpiresAt: function (v) { expiresAt = toMs(v); schedule(); }};
  w.SessionRefresh = api;
  d.addEventListener("visibilitychange", check);
  w.addEventListener("focus", check);

  var me = d.currentScript;
  if (me && (me.hasAttribute("data-expires-at") || me.hasAttribute("data-refresh-url"))) {
    var opts = {expiresAt: me.getAttribute("data-expires-at")};
    if (me.getAttribute("data-refresh-url")) opts.refreshUrl = me.getAttribute("data-refresh-url");
    if (me.getAttribute("data-return-param")) opts.returnParam = me.getAttribute("data-return-param");
    if (d.body) init(opts);
    else d.addEventListener("DOMContentLoaded", function () { init(opts); });
  }
})(window, document);
