// Passkeys (WebAuthn) on /login, /login/mfa and /account/passkeys. No outside assets.
// The server sends the options as JSON (base64url for binary values); the answer goes back
// as an ordinary form post (field `credential`), so the server answers as for a password.
(function () {
  "use strict";

  function toBytes(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  function requestOptions(o) {
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }

  function credentialJSON(cred) {
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) { response.userHandle = toB64url(r.userHandle); }
    }
    return JSON.stringify({
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }

  function fetchOptions(form, body) {
    var token = form.querySelector('input[name="csrf_token"]').value;
    return fetch(form.dataset.optionsUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (!resp.ok) { throw new Error(data.error || "Passkeys are not available now."); }
        return data;
      });
    });
  }

  function showError(form, message) {
    var p = form.querySelector("#passkey-error");
    if (p) { p.textContent = message; p.hidden = false; }
  }

  function submitWith(form, cred) {
    form.querySelector('input[name="credential"]').value = credentialJSON(cred);
    form.submit();
  }

  function cancelled(err) {
    return err && (err.name === "NotAllowedError" || err.name === "AbortError");
  }

  if (!window.PublicKeyCredential || !navigator.credentials) { return; }

  // /account/passkeys: Add a passkey.
  var add = document.getElementById("passkey-add");
  if (add) {
    add.querySelector('[data-passkey-action="create"]').addEventListener("click", function () {
      var pw = document.getElementById("passkey-password");
      fetchOptions(add, { password: pw ? pw.value : undefined }).then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      }).then(function (cred) { submitWith(add, cred); }).catch(function (err) {
        showError(add, cancelled(err) ? "No passkey was added." : err.message);
      });
    });
  }

  // /login and /login/mfa: a button; on /login also the browser's autofill (conditional UI).
  var form = document.getElementById("passkey-signin") || document.getElementById("passkey-mfa");
  if (!form) { return; }
  var button = form.querySelector('[data-passkey-action="get"]');
  var pending = null;  // the AbortController of the autofill request, if one is waiting

  function armAutofill() {
    if (form.id !== "passkey-signin" || !PublicKeyCredential.isConditionalMediationAvailable) {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok || pending) { return null; }
      var controller = new AbortController();
      pending = controller;
      return fetchOptions(form).then(function (options) {
        return navigator.credentials.get({
          publicKey: requestOptions(options), mediation: "conditional",
          signal: controller.signal
        });
      }).then(function (cred) {
        pending = null;
        if (cred) { submitWith(form, cred); }
      }).catch(function (err) {
        if (pending === controller) { pending = null; }
        if (!cancelled(err)) { showError(form, err.message); }
      });
    });
  }

  button.hidden = false;
  button.addEventListener("click", function () {
    if (pending) { pending.abort(); pending = null; }  // one WebAuthn request at a time
    fetchOptions(form).then(function (options) {
      return navigator.credentials.get({ publicKey: requestOptions(options) });
    }).then(function (cred) { submitWith(form, cred); }).catch(function (err) {
      showError(form, cancelled(err) ? "No passkey was used." : err.message);
      armAutofill();
    });
  });
  // The page may be shown again from the back/forward cache: ask again each time it shows.
  window.addEventListener("pageshow", function () { armAutofill(); });
}());
