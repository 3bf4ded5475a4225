// jit-ssh pages: enrolling a key; confirming an access request, a
// revocation or a sign-in.
// WebAuthn options arrive as JSON with base64url strings; the browser API
// wants ArrayBuffers, and the CA wants base64url back.
"use strict";

function fromB64url(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function toB64url(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
  return data;
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function result(text, ok) {
  const el = document.getElementById("result");
  el.textContent = text;
  el.className = ok ? "ok" : "error";
}

const pathPart = () => decodeURIComponent(location.pathname.split("/")[2] || "");

async function enroll(token) {
  const options = await api("POST", `/v1/enroll/${token}/start`);
  const pk = options.publicKey;
  pk.challenge = fromB64url(pk.challenge);
  pk.user.id = fromB64url(pk.user.id);
  pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  const cred = await navigator.credentials.create({ publicKey: pk });
  return api("POST", `/v1/enroll/${token}/finish`, {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: toB64url(cred.response.attestationObject),
      clientDataJSON: toB64url(cred.response.clientDataJSON),
    },
  });
}

async function approve(id, kind = "requests") {
  const options = await api("POST", `/v1/${kind}/${id}/mfa/start`);
  const pk = options.publicKey;
  pk.challenge = fromB64url(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  const a = await navigator.credentials.get({ publicKey: pk });
  return api("POST", `/v1/${kind}/${id}/mfa/finish`, {
    id: a.id,
    rawId: toB64url(a.rawId),
    type: a.type,
    response: {
      authenticatorData: toB64url(a.response.authenticatorData),
      clientDataJSON: toB64url(a.response.clientDataJSON),
      signature: toB64url(a.response.signature),
      userHandle: a.response.userHandle ? toB64url(a.response.userHandle) : null,
    },
  });
}

const STATUS_TEXT = {
  pending_mfa: "waiting for your security key",
  pending_approval: "waiting for approval",
  issued: "issued — your terminal has the certificate",
  denied: "denied",
  expired: "expired",
  cancelled: "cancelled by the requester",
};

async function enrollPage() {
  const token = pathPart();
  const button = document.getElementById("enroll");
  try {
    const invite = await api("GET", `/v1/enroll/${token}`);
    show("user", invite.user);
    show("expires", invite.expires_at);
    button.disabled = false;
  } catch (e) {
    result(e.message, false);
    return;
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const done = await enroll(token);
      result(`Enrolled: ${done.user} now has ${done.credentials} key(s). You can close this page.`, true);
    } catch (e) {
      result(`Enrollment failed: ${e.message}`, false);
      button.disabled = false;
    }
  });
}

function showRequest(r) {
  show("user", r.user);
  show("host", r.host);
  show("account", r.account);
  show("ttl", r.ttl);
  show("reason", r.reason);
  show("fingerprint", r.key_fingerprint);
  show("status", STATUS_TEXT[r.status] || r.status);
}

// A page where the person confirms one access request or revocation:
// show what it is, and on the button press run the WebAuthn assertion.
// `verdict(r)` turns the answer into [message, ok].
async function confirmPage(kind, buttonId, render, verdict) {
  const id = pathPart();
  const button = document.getElementById(buttonId);
  try {
    const r = await api("GET", `/v1/${kind}/${id}/summary`);
    render(r);
    button.disabled = r.status !== "pending_mfa";
  } catch (e) {
    result(e.message, false);
    return;
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await approve(id, kind);
      render(r);
      result(...verdict(r));
    } catch (e) {
      result(`Not confirmed: ${e.message}`, false);
      button.disabled = false;
    }
  });
}

function targetText(t) {
  const [kind, value] = Object.entries(t)[0];
  return `${kind.replace("_", " ")} ${value}`;
}

function showRevocation(r) {
  show("user", r.user);
  show("target", targetText(r.target));
  show("reason", r.reason);
  show("status", r.status.replace("_", " ") + (r.outcome ? ` — ${r.outcome}` : ""));
}

const mfaPage = () =>
  confirmPage("requests", "approve", showRequest, (r) =>
    r.status === "denied"
      ? [`Denied: ${r.decision || "by policy"}`, false]
      : [`Confirmed: ${STATUS_TEXT[r.status] || r.status}.`, true]);

const revokePage = () =>
  confirmPage("revocations", "revoke", showRevocation, (r) =>
    r.status === "revoked" ? [`Revoked: ${r.outcome}`, true] : [`Not revoked: ${r.outcome}`, false]);

function showSession(s) {
  show("user", s.user);
  show("status", s.status.replace("_", " ") + (s.roles && s.roles.length ? ` — roles: ${s.roles.join(", ")}` : ""));
}

const signinPage = () =>
  confirmPage("sessions", "signin", showSession, (s) =>
    s.status === "active"
      ? [`Signed in until ${s.expires_at}. Your terminal can go on; you can close this page.`, true]
      : [`Not signed in: ${s.status}`, false]);

function showApprovers(r) {
  const a = r.approval;
  if (!a) return show("approvers", "—");
  const done = a.approved_by.length ? `; approved by ${a.approved_by.join(", ")}` : "";
  show("approvers", `${a.approved_by.length} of ${a.needed} from ${a.approvers.join(", ")}${done}`);
}

// /approve/{request}: the approver names themselves, approves or denies,
// and confirms with their own key in one go.
async function approvePage() {
  const id = pathPart();
  const buttons = ["approve-request", "deny-request"].map((b) => document.getElementById(b));
  const load = async () => {
    const r = await api("GET", `/v1/requests/${id}/summary`);
    showRequest(r);
    showApprovers(r);
    buttons.forEach((b) => (b.disabled = r.status !== "pending_approval"));
  };
  try {
    await load();
  } catch (e) {
    result(e.message, false);
    return;
  }
  const decide = (verdict) => async () => {
    buttons.forEach((b) => (b.disabled = true));
    try {
      const user = document.getElementById("approver").value.trim();
      const comment = document.getElementById("comment").value.trim();
      const created = await api("POST", `/v1/requests/${id}/decisions`, { user, verdict, comment });
      const d = await approve(created.id, "decisions");
      result(d.status === "recorded" ? `Recorded: ${d.outcome}` : `Refused: ${d.outcome}`, d.status === "recorded");
      await load();
    } catch (e) {
      result(`Not recorded: ${e.message}`, false);
      await load().catch(() => {});
    }
  };
  buttons[0].addEventListener("click", decide("approve"));
  buttons[1].addEventListener("click", decide("deny"));
}

// /decide/{decision}: confirm a decision made with `jit-ssh approve|deny`.
const decidePage = () =>
  confirmPage("decisions", "decide", (d) => {
    show("approver", d.user);
    show("verdict", d.verdict + (d.comment ? ` — ${d.comment}` : ""));
    showRequest({ ...d.summary, status: d.status });
    show("status", d.status.replace("_", " ") + (d.outcome ? ` — ${d.outcome}` : ""));
  }, (d) => d.status === "recorded" ? [`Recorded: ${d.outcome}`, true] : [`Refused: ${d.outcome}`, false]);

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "enroll") enrollPage();
  if (page === "mfa") mfaPage();
  if (page === "revoke") revokePage();
  if (page === "signin") signinPage();
  if (page === "approve") approvePage();
  if (page === "decide") decidePage();
});
