/* Example single-page app for Authserver: a public client (no secret) that signs in with the
 * authorization code flow + PKCE (S256), calls /userinfo, rotates its refresh token, revokes
 * its tokens, and shows the issuer's session-expired pop-up when its session has ended.
 *
 * Every call to the issuer is a cross-origin fetch() that Authserver allows for this client's
 * web origins (SPEC section 7). Tokens live only in this page's memory; the PKCE verifier and
 * state live in sessionStorage for the one round trip to the issuer and back.
 */
(function (w, d) {
  "use strict";
  var cfg = null, tokens = null, refreshing = null, timer = null;
  var PENDING = "spa.pending";

  function $(id) { return d.getElementById(id); }

  function log(text, isError) {
    var li = d.createElement("li");
    li.textContent = text;
    if (isError) li.className = "error";
    $("log").appendChild(li);
  }

  function OAuthError(status, body) {
    this.status = status;
    this.error = (body && body.error) || "http_" + status;
    this.message = this.error + ((body && body.error_description) ? ": " + body.error_description : "");
  }

  // --- PKCE (RFC 7636) ---------------------------------------------------------------------
  function b64url(bytes) {
    var s = "";
    new Uint8Array(bytes).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function random(n) { return b64url(w.crypto.getRandomValues(new Uint8Array(n))); }
  function s256(text) {
    return w.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(b64url);
  }
  function redirectUri() { return w.location.origin + "/"; }

  // /authorize for a first sign-in, /refresh when the session-expired pop-up sends us back.
  function startSignIn(endpoint, returnTo) {
    if (!/^\/(?![\/\\])/.test(returnTo || "")) returnTo = "/";  // a path on this origin only
    var verifier = random(48), state = random(16);
    sessionStorage.setItem(PENDING, JSON.stringify({verifier: verifier, state: state,
                                                    returnTo: returnTo}));
    return s256(verifier).then(function (challenge) {
      var url = new URL(cfg.issuer + endpoint), q = url.searchParams;
      q.set("client_id", cfg.clientId);
      q.set("redirect_uri", redirectUri());
      q.set("state", state);
      q.set("code_challenge", challenge);
      q.set("code_challenge_method", "S256");
      if (endpoint === "/authorize") {
        q.set("response_type", "code");
        q.set("scope", "openid profile email offline_access");
      }
      w.location.assign(url.href);
    });
  }

  // --- calls to the issuer -----------------------------------------------------------------
  function post(path, body) {   // a form POST: a "simple" CORS request, no preflight
    return fetch(cfg.issuer + path, {method: "POST", body: new URLSearchParams(body)})
      .then(function (resp) {
        return resp.text().then(function (text) {
          var data = text ? JSON.parse(text) : {};
          if (!resp.ok) throw new OAuthError(resp.status, data);
          return data;
        });
      });
  }

  function keep(fresh) {
    tokens = {access: fresh.access_token, refresh: fresh.refresh_token || null,
              idToken: fresh.id_token || (tokens && tokens.idToken) || null,
              expiresAt: Date.now() + (fresh.expires_in || 0) * 1000};
    clearTimeout(timer);  // refresh silently a minute before the access token expires
    timer = setTimeout(refresh, Math.max(5000, (fresh.expires_in - 60) * 1000));
    render();
  }

  function redeem(q) {
    var pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    w.history.replaceState(null, "", (pending && pending.returnTo) || "/");  // drop the code
    if (!pending || q.get("state") !== pending.state) {
      return Promise.reject(new Error("the answer's state is not the one this page sent"));
    }
    if (q.has("iss") && q.get("iss") !== cfg.issuer) {  // RFC 9207
      return Promise.reject(new Error("the answer comes from another issuer"));
    }
    if (q.has("error")) return Promise.reject(new OAuthError(400, {error: q.get("error"),
      error_description: q.get("error_description")}));
    return post("/token", {grant_type: "authorization_code", code: q.get("code"),
                           redirect_uri: redirectUri(), code_verifier: pending.verifier,
                           client_id: cfg.clientId})
      .then(function (fresh) { keep(fresh); log("Signed in: tokens from /token"); });
  }

  // One refresh at a time: presenting a rotated refresh token twice would revoke the family.
  function refresh() {
    if (refreshing) return refreshing;
    if (!tokens || !tokens.refresh) { sessionEnded("no refresh token"); return Promise.resolve(false); }
    var old = tokens.refresh;
    refreshing = post("/token", {grant_type: "refresh_token", refresh_token: old,
                                 client_id: cfg.clientId})
      .then(function (fresh) {
        keep(fresh);
        log(fresh.refresh_token && fresh.refresh_token !== old
            ? "Refreshed: new access token, refresh token rotated"
            : "Refreshed: new access token");
        return true;
      }, function (e) {
        if (!(e instanceof OAuthError)) throw e;
        sessionEnded(e.message);
        return false;
      })
      .finally(function () { refreshing = null; });
    return refreshing;
  }

  function sessionEnded(why) {
    tokens = null;
    clearTimeout(timer);
    render();
    log("The session has ended (" + why + ")", true);
    if (w.SessionRefresh) w.SessionRefresh.expired();  // Refresh -> /?refresh=1 -> /refresh
  }

  function userinfo(retried) {   // the Authorization header makes this a preflighted request
    if (!tokens) return Promise.resolve();
    return fetch(cfg.issuer + "/userinfo", {headers: {Authorization: "Bearer " + tokens.access}})
      .then(function (resp) {
        if (resp.status === 401 && !retried) {
          return refresh().then(function (ok) { return ok && userinfo(true); });
        }
        return resp.json().then(function (data) {
          if (!resp.ok) throw new OAuthError(resp.status, data);
          $("userinfo").textContent = JSON.stringify(data, null, 2);
          $("status").textContent = "Signed in as " + (data.name || data.preferred_username);
          log("Called /userinfo: " + data.preferred_username);
        });
      });
  }

  function revoke() {
    if (!tokens) return Promise.resolve();
    var sent = [post("/revoke", {token: tokens.access, token_type_hint: "access_token",
                                 client_id: cfg.clientId})];
    if (tokens.refresh) {
      sent.push(post("/revoke", {token: tokens.refresh, token_type_hint: "refresh_token",
                                 client_id: cfg.clientId}));
    }
    return Promise.all(sent).then(function () {
      tokens = null;
      clearTimeout(timer);
      render();
      $("status").textContent = "Signed out of this app (tokens revoked)";
      log("Revoked the tokens at /revoke");
    });
  }

  function signOut() {  // RP-initiated logout: ends the session at the issuer too
    var url = new URL(cfg.issuer + "/logout"), q = url.searchParams;
    if (tokens && tokens.idToken) q.set("id_token_hint", tokens.idToken);
    q.set("client_id", cfg.clientId);
    q.set("post_logout_redirect_uri", redirectUri());
    tokens = null;
    w.location.assign(url.href);
  }

  // --- the page ----------------------------------------------------------------------------
  function render() {
    var on = !!tokens;
    $("sign-in").disabled = on;
    ["call-userinfo", "refresh", "revoke", "sign-out"].forEach(function (id) {
      $(id).disabled = !on;
    });
    if (!on) $("status").textContent = "Signed out";
    $("expires").textContent = on
      ? "Access token valid for " + Math.round((tokens.expiresAt - Date.now()) / 1000) + " s" : "";
  }

  function failed(e) {
    log(e instanceof TypeError ? "Could not reach the issuer (network or CORS): " + e.message
                               : "Error: " + e.message, true);
  }

  function on(id, action) {
    $(id).addEventListener("click", function () { Promise.resolve().then(action).catch(failed); });
  }

  function loadPopup() {  // the issuer's session-expired pop-up (static/session-refresh.js)
    var css = d.createElement("link");
    css.rel = "stylesheet";
    css.href = cfg.issuer + "/static/session-refresh.css";
    d.head.appendChild(css);
    var js = d.createElement("script");
    js.src = cfg.issuer + "/static/session-refresh.js";
    js.onload = function () { w.SessionRefresh.init({refreshUrl: "/?refresh=1"}); };
    d.head.appendChild(js);
  }

  function start(config) {
    cfg = config;
    loadPopup();
    on("sign-in", function () { return startSignIn("/authorize", "/"); });
    on("call-userinfo", function () { return userinfo(false); });
    on("refresh", refresh);
    on("revoke", revoke);
    on("sign-out", signOut);
    render();
    var q = new URLSearchParams(w.location.search);
    if (q.has("refresh")) return startSignIn("/refresh", q.get("return_to") || "/");
    if (q.has("code") || q.has("error")) {
      return redeem(q).then(function () { return userinfo(false); });
    }
  }

  fetch("/config.json").then(function (r) { return r.json(); }).then(start).catch(failed);
})(window, document);
