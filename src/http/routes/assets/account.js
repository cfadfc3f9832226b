// The hosted sign-in and security pages: they call this service's own JSON API, and WebAuthn
// where a passkey is used. Served from this origin only (the pages' policy allows no other
// script). Tokens are kept in this tab's sessionStorage, never in a cookie.
"use strict";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

function say(text, isError) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function api(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  return { status: response.status, data };
}

function problem(answer) {
  const fields = (answer.data.errors || []).map((e) => e.field + ": " + e.message).join("; ");
  return (answer.data.detail || answer.data.title || "failed") + (fields ? " (" + fields + ")" : "");
}

// base64url <-> bytes, for the binary fields of WebAuthn options and credentials.
function bytes(text) {
  const plain = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(plain + "=".repeat((4 - (plain.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}
function text(buffer) {
  if (!buffer) return null;
  let raw = "";
  new Uint8Array(buffer).forEach((b) => { raw += String.fromCharCode(b); });
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function create(options) {
  const key = options.publicKey;
  key.challenge = bytes(key.challenge);
  key.user.id = bytes(key.user.id);
  (key.excludeCredentials || []).forEach((c) => { c.id = bytes(c.id); });
  const made = await navigator.credentials.create({ publicKey: key });
  return {
    id: made.id, rawId: text(made.rawId), type: made.type, extensions: {},
    response: { clientDataJSON: text(made.response.clientDataJSON), attestationObject: text(made.response.attestationObject) },
  };
}

async function get(options) {
  const key = options.publicKey;
  key.challenge = bytes(key.challenge);
  (key.allowCredentials || []).forEach((c) => { c.id = bytes(c.id); });
  const got = await navigator.credentials.get({ publicKey: key });
  return {
    id: got.id, rawId: text(got.rawId), type: got.type, extensions: {},
    response: {
      clientDataJSON: text(got.response.clientDataJSON), authenticatorData: text(got.response.authenticatorData),
      signature: text(got.response.signature), userHandle: text(got.response.userHandle),
    },
  };
}

// ---- /sign-in ----

let mfaToken = null;

function signedIn(tokens) {
  store.setItem("tessera.access_token", tokens.access_token);
  store.setItem("tessera.refresh_token", tokens.refresh_token);
  $("second-step").hidden = true;
  $("password-form").hidden = true;
  $("done").hidden = false;
  say("");
}

async function finishWith(answer) {
  if (answer.status === 200) return signedIn(answer.data);
  if (answer.status === 403 && answer.data.code === "mfa_required") {
    mfaToken = answer.data.mfa_token;
    $("second-step").hidden = false;
    $("passkey-second").hidden = !answer.data.mfa_methods.includes("passkey");
    return say("Your password is right. Now confirm with your second factor.");
  }
  say(problem(answer), true);
}

async function passkeySignIn(token) {
  try {
    const started = await api("POST", "v1/auth/passkey/start", token ? { mfa_token: token } : undefined);
    if (started.status !== 200) return say(problem(started), true);
    const credential = await get(started.data.options);
    await finishWith(await api("POST", "v1/auth/passkey/finish", { challenge_id: started.data.challenge_id, credential }));
  } catch (error) {
    say("The passkey was not used: " + error.message, true);
  }
}

function signInPage() {
  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const login = $("login").value.trim();
    const body = login.includes("@") ? { email: login } : { username: login };
    body.password = $("password").value;
    await finishWith(await api("POST", "v1/auth/login", body));
  });
  $("code-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = $("code").value.trim();
    const body = /^\d{6}$/.test(code) ? { totp_code: code } : { recovery_code: code };
    body.mfa_token = mfaToken;
    await finishWith(await api("POST", "v1/auth/mfa", body));
  });
  $("passkey-second").addEventListener("click", () => passkeySignIn(mfaToken));
  $("passkey-button").addEventListener("click", () => passkeySignIn(null));
}

// ---- /account/security ----

function token() {
  return store.getItem("tessera.access_token");
}

// The password and, when the account has a factor, a current code from the form.
function confirmation() {
  const body = { current_password: $("current-password").value };
  const code = $("current-code").value.trim();
  if (code) body.code = code;
  return body;
}

async function refresh() {
  const status = await api("GET", "../v1/me/mfa", undefined, token());
  if (status.status !== 200) {
    $("signed-in").hidden = true;
    return say("Sign in first.", true);
  }
  $("status").textContent = "Authenticator app: " + (status.data.totp ? "on" : "off") + " · passkeys: "
    + status.data.passkeys + " · recovery codes left: " + status.data.recovery_codes_left;
  const listed = await api("GET", "../v1/me/passkeys", undefined, token());
  const list = $("passkeys");
  list.replaceChildren();
  listed.data.items.forEach((passkey) => {
    const item = document.createElement("li");
    item.textContent = passkey.name + " ";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", async () => {
      const answer = await api("DELETE", "../v1/me/passkeys/" + passkey.id, confirmation(), token());
      if (answer.status !== 204) return say(problem(answer), true);
      say("Passkey removed.");
      await refresh();
    });
    item.appendChild(remove);
    list.appendChild(item);
  });
}

function showCodes(codes) {
  const list = $("recovery-codes");
  list.replaceChildren();
  (codes || []).forEach((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    list.appendChild(item);
  });
  $("codes").hidden = !codes || codes.length === 0;
}

function securityPage() {
  $("add-passkey").addEventListener("click", async () => {
    try {
      const started = await api("POST", "../v1/me/passkeys/start", confirmation(), token());
      if (started.status !== 200) return say(problem(started), true);
      const credential = await create(started.data.options);
      const name = $("passkey-name").value.trim() || undefined;
      const body = { challenge_id: started.data.challenge_id, credential, name };
      const finished = await api("POST", "../v1/me/passkeys/finish", body, token());
      if (finished.status !== 201) return say(problem(finished), true);
      showCodes(finished.data.recovery_codes);
      say("Passkey added.");
      await refresh();
    } catch (error) {
      say("The passkey was not added: " + error.message, true);
    }
  });
  $("add-app").addEventListener("click", async () => {
    const started = await api("POST", "../v1/me/mfa/totp", confirmation(), token());
    if (started.status !== 200) return say(problem(started), true);
    $("qr").src = "data:image/svg+xml;base64," + btoa(started.data.qr_svg);
    $("secret").textContent = started.data.secret;
    $("app-setup").hidden = false;
    say("Scan the code with your app, then type the code it shows.");
  });
  $("confirm-app").addEventListener("click", async () => {
    const answer = await api("POST", "../v1/me/mfa/totp/confirm", { code: $("app-code").value.trim() }, token());
    if (answer.status !== 200) return say(problem(answer), true);
    $("app-setup").hidden = true;
    showCodes(answer.data.recovery_codes);
    say("Authenticator app added.");
    await refresh();
  });
  $("sign-out").addEventListener("click", async () => {
    await api("POST", "../v1/auth/logout", undefined, token());
    store.clear();
    window.location.href = "../sign-in";
  });
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  if ($("password-form")) signInPage();
  if ($("add-passkey")) securityPage();
});
