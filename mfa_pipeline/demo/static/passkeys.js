// Passkeys and security keys: "Add a passkey or security key" in security settings and "Use a
// passkey" at sign-in. Options come from this app (never from the MFA service directly); the
// browser's JSON helpers turn them into what navigator.credentials wants, with a small
// fallback for browsers without PublicKeyCredential.parse*OptionsFromJSON / toJSON().
(function () {
  "use strict";

  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: fromB64url(c.id) }); });
  }

  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: fromB64url(json.challenge),
      user: Object.assign({}, json.user, { id: fromB64url(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: fromB64url(json.challenge),
      allowCredentials: withIds(json.allowCredentials),
    });
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    var r = credential.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: response,
    };
  }

  async function post(url, csrf, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    var answer = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(answer.message || "Something went wrong. Try again.");
    return answer;
  }

  function setUp(root, run) {
    var button = root.querySelector("[data-passkey-start]");
    var live = root.querySelector("[data-passkey-status]");
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      live.textContent = "This browser cannot use passkeys or security keys.";
      button.disabled = true;
      return;
    }
    button.hidden = false;
    button.addEventListener("click", async function () {
      button.disabled = true;
      live.textContent = "Follow your browser's prompt…";
      try {
        await run(root, live);
      } catch (error) {
        live.textContent = error && error.name === "NotAllowedError"
          ? "Cancelled, or the passkey could not be used here. You can try again."
          : (error && error.message) || "Something went wrong. Try again.";
        button.disabled = false;
        button.focus();
      }
    });
  }

  var add = document.getElementById("passkey-add");
  if (add) {
    setUp(add, async function (root, live) {
      var csrf = root.dataset.csrf, name = root.querySelector("input[name=passkey_name]").value;
      var start = await post("/settings/passkeys/options", csrf, { name: name });
      var credential = await navigator.credentials.create({ publicKey: creationOptions(start.public_key) });
      live.textContent = "Checking…";
      await post("/settings/passkeys", csrf, {
        registration_id: start.registration_id, credential: credentialJSON(credential), name: name,
      });
      window.location.assign("/settings/security");
    });
  }

  var use = document.getElementById("passkey-login");
  if (use) {
    setUp(use, async function (root, live) {
      var csrf = root.dataset.csrf;
      var start = await post("/login/passkey/options", csrf);
      var credential = await navigator.credentials.get({ publicKey: requestOptions(start.public_key) });
      live.textContent = "Checking…";
      var remember = document.getElementById("passkey-remember");
      var done = await post("/login/passkey", csrf, {
        credential: credentialJSON(credential), remember: !!(remember && remember.checked),
      });
      window.location.assign(done.next || "/");
    });
  }
})();
