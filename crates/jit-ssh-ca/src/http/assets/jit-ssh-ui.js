// jit-ssh pages, the words around the ceremony: times in the reader's own
// zone (UTC on hover), and what a failed WebAuthn ceremony means in words
// a person can act on. The browser's own text ("The operation either
// timed out or was not allowed. See: https://www.w3.org/…") says neither
// what happened nor what to do. Loaded before jit-ssh.js.
"use strict";

// "29 Nov 2026, 13:40 CET" in the reader's zone and locale.
const LOCAL_TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", timeZoneName: "short",
});

// "2026-11-29 12:40:05 UTC": what the CA, the audit log and sshd say.
function utcText(d) {
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

// A <time> element for an RFC 3339 instant: local text, UTC on hover.
function timeElement(iso) {
  const d = new Date(iso);
  const el = document.createElement("time");
  if (typeof iso !== "string" || Number.isNaN(d.getTime())) {
    el.textContent = "unknown";
    return el;
  }
  el.dateTime = d.toISOString();
  el.title = utcText(d);
  el.textContent = LOCAL_TIME.format(d);
  return el;
}

// Puts the time `iso` into the element `id` (replacing its text).
function showTime(id, iso) {
  document.getElementById(id).replaceChildren(timeElement(iso));
}

// Builds a node list of text and times: parts are strings, or {time: iso}.
function withTimes(parts) {
  return parts.map((p) => (typeof p === "string" ? document.createTextNode(p) : timeElement(p.time)));
}

// The CA refused (its message is already written for people).
class CaError extends Error {}

// What a failed ceremony means: [what happened, [what to do, one cause
// each]]. `who` is the user the key must belong to (may be empty);
// `registering` for enrollment.
function explainWebAuthn(e, who, registering) {
  if (e instanceof CaError) return [e.message, []];
  const whose = who ? `the key you enrolled as ${who}` : "the key you enrolled";
  switch (e && e.name) {
    case "NotAllowedError":
      // The browser gives this one name to a cancel, a timeout, a key that
      // could not verify its user and (for a confirmation) a key it does
      // not know: say each, in the order people meet them.
      return [registering ? "Your key did not register." : "Your security key did not confirm.", [
        "Cancelled, or it timed out? Press the button again and touch your key.",
        "Your key has no PIN, fingerprint or face set up? Set one up first: jit-ssh requires user verification, a touch alone is not enough.",
        ...(registering ? [] : [`Not ${whose}? Use that key: a key nobody enrolled cannot confirm anything (an admin can send you an invite to enroll it).`]),
      ]];
    case "InvalidStateError":
      return registering
        ? ["This key is already registered for this user.", ["Use it, or register a different key."]]
        : ["Your security key refused this request.", ["Press the button again; if it keeps refusing, unplug and re-insert it."]];
    case "AbortError":
      return ["The security key prompt was closed before it finished.", ["Press the button again."]];
    case "SecurityError":
      return ["This page's address is not the one the CA is configured for, so your key will not answer here.", ["Open the link exactly as it was printed."]];
    case "NotSupportedError":
      return ["This browser cannot use a security key or passkey here.", ["Use a current Chrome, Edge, Firefox or Safari."]];
    default:
      return [`Your browser could not use your security key (${(e && e.name) || "unknown error"}).`,
        ["Press the button again; if it keeps failing, try another browser."]];
  }
}

// Shows a failure in #result: `prefix`, what happened, and what to do as
// a list.
function showFailure(prefix, e, who, registering) {
  const [what, todo] = explainWebAuthn(e, who, registering);
  const el = document.getElementById("result");
  const list = document.createElement("ul");
  for (const t of todo) {
    const li = document.createElement("li");
    li.textContent = t;
    list.append(li);
  }
  el.replaceChildren(document.createTextNode(`${prefix}. ${what}`), ...(todo.length ? [list] : []));
  el.className = "error";
}

// Whether this browser can run a WebAuthn ceremony at all.
function webAuthnAvailable() {
  return window.isSecureContext && !!window.PublicKeyCredential && !!navigator.credentials;
}
