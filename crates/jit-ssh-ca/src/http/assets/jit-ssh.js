// jit-ssh pages: enrolling a key; confirming an access request, a
// revocation, an approver's decision or a sign-in. Each page is bound to
// one kind of thing (RESOURCES) and says what the touch will do.
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

// What each page confirms, fixed per page: the API collection its URLs
// are built from and the kind its summaries must name. Nothing of an API
// URL comes from the location except an id that passed `ID`.
const RESOURCES = {
  requests: { api: "/v1/requests/", kind: "access_request" },
  revocations: { api: "/v1/revocations/", kind: "revocation" },
  decisions: { api: "/v1/decisions/", kind: "decision" },
  sessions: { api: "/v1/sessions/", kind: "sign_in" },
};
const KIND_TEXT = {
  access_request: "an SSH access request",
  revocation: "a revocation",
  decision: "an approver's decision",
  sign_in: "a sign-in",
};

// Ids are 32 lowercase hex digits, invite tokens 64. The path segment is
// taken raw (still percent-encoded) and never decoded: `..%2F`, encoded
// slashes or anything else that is not exactly an id is refused.
const ID = /^[0-9a-f]{32}$/;
const TOKEN = /^[0-9a-f]{64}$/;

function pathSegment(pattern) {
  const parts = location.pathname.split("/");
  const seg = parts.length === 3 ? parts[2] : "";
  if (!pattern.test(seg)) throw new Error("This link is damaged or not a jit-ssh link: nothing can be confirmed here. Use the link your terminal printed, unchanged.");
  return seg;
}

function checkedId(id) {
  if (typeof id !== "string" || !ID.test(id)) throw new Error("the CA answered with a malformed id");
  return id;
}

// An answer about `id` must be of the page's kind and about that id.
function bound(resource, id, r) {
  if (r.kind !== resource.kind || r.id !== id) {
    const what = KIND_TEXT[r.kind] || "something else";
    throw new Error(`This link leads to ${what}, not ${KIND_TEXT[resource.kind]}: nothing was confirmed.`);
  }
  return r;
}

async function summaryOf(resource, id) {
  return bound(resource, id, await api("GET", `${resource.api}${checkedId(id)}/summary`));
}

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

// The WebAuthn touch for `id` of `resource`; the answer must be about it.
async function touch(resource, id) {
  const base = `${resource.api}${checkedId(id)}`;
  const options = await api("POST", `${base}/mfa/start`);
  const pk = options.publicKey;
  pk.challenge = fromB64url(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  const a = await navigator.credentials.get({ publicKey: pk });
  const done = await api("POST", `${base}/mfa/finish`, {
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
  return bound(resource, id, done);
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
  const button = document.getElementById("enroll");
  let token;
  try {
    token = pathSegment(TOKEN);
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

// The code the terminal printed next to the link, shown large.
function showMatchCode(r) {
  show("match-code", r.match_code);
}

// A page where the person confirms one thing of `resource`'s kind: show
// what the touch will do and the match code, and on the button press run
// the WebAuthn assertion. `verdict(r)` turns the answer into [message, ok].
async function confirmPage(resource, buttonId, render, verdict) {
  const button = document.getElementById(buttonId);
  let id;
  try {
    id = pathSegment(ID);
    const r = await summaryOf(resource, id);
    render(r);
    showMatchCode(r);
    button.disabled = r.status !== "pending_mfa";
  } catch (e) {
    show("action", "Nothing to confirm.");
    result(e.message, false);
    return;
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await touch(resource, id);
      render(r);
      result(...verdict(r));
    } catch (e) {
      result(`Not confirmed: ${e.message}`, false);
      button.disabled = false;
    }
  });
}

const mfaPage = () =>
  confirmPage(RESOURCES.requests, "approve", (r) => {
    show("action", `Give ${r.user} SSH access to ${r.host} as ${r.account} for ${r.ttl}` +
      (r.break_glass ? " (break-glass)" : ""));
    showRequest(r);
  }, (r) =>
    r.status === "denied"
      ? [`Denied: ${r.decision || "by policy"}`, false]
      : [`Confirmed: ${STATUS_TEXT[r.status] || r.status}.`, true]);

// What a revocation takes away, in words.
function targetText(t) {
  const [kind, value] = Object.entries(t)[0];
  switch (kind) {
    case "serial": return `the certificate with serial ${value}`;
    case "grant": return `every certificate of grant ${value}`;
    case "user": return `every certificate of user ${value}, and block their new ones`;
    case "key_id": return `the certificate with key id ${value}`;
    default: return `${kind} ${value}`;
  }
}

const revokePage = () =>
  confirmPage(RESOURCES.revocations, "revoke", (r) => {
    show("action", `Revoke ${targetText(r.target)}`);
    show("user", r.user);
    show("target", targetText(r.target));
    show("reason", r.reason);
    show("status", r.status.replace("_", " ") + (r.outcome ? ` — ${r.outcome}` : ""));
  }, (r) =>
    r.status === "revoked" ? [`Revoked: ${r.outcome}`, true] : [`Not revoked: ${r.outcome}`, false]);

const signinPage = () =>
  confirmPage(RESOURCES.sessions, "signin", (s) => {
    show("action", `Sign in as ${s.user} to read the audit log and decide access requests`);
    show("user", s.user);
    show("status", s.status.replace("_", " ") + (s.roles && s.roles.length ? ` — roles: ${s.roles.join(", ")}` : ""));
  }, (s) =>
    s.status === "active"
      ? [`Signed in until ${s.expires_at}. Your terminal can go on; you can close this page.`, true]
      : [`Not signed in: ${s.status}`, false]);

function showApprovers(r) {
  const a = r.approval;
  if (!a) return show("approvers", "—");
  const done = a.approved_by.length ? `; approved by ${a.approved_by.join(", ")}` : "";
  show("approvers", `${a.approved_by.length} of ${a.needed}${done}`);
}

// /approve/{request}: the approver names themselves, approves or denies,
// and confirms with their own key in one go.
async function approvePage() {
  const buttons = ["approve-request", "deny-request"].map((b) => document.getElementById(b));
  let id;
  const load = async () => {
    const r = await summaryOf(RESOURCES.requests, id);
    show("action", `Decide whether ${r.user} gets SSH access to ${r.host} as ${r.account} for ${r.ttl}`);
    showRequest(r);
    showApprovers(r);
    buttons.forEach((b) => (b.disabled = r.status !== "pending_approval"));
  };
  try {
    id = pathSegment(ID);
    await load();
  } catch (e) {
    show("action", "Nothing to decide.");
    result(e.message, false);
    return;
  }
  const decide = (verdict) => async () => {
    buttons.forEach((b) => (b.disabled = true));
    try {
      const user = document.getElementById("approver").value.trim();
      const comment = document.getElementById("comment").value.trim();
      const created = await api("POST", `${RESOURCES.requests.api}${checkedId(id)}/decisions`, { user, verdict, comment });
      const d = await touch(RESOURCES.decisions, created.id);
      if (d.request !== id) throw new Error("the CA answered about another request");
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
  confirmPage(RESOURCES.decisions, "decide", (d) => {
    const r = d.summary;
    const verb = d.verdict === "deny" ? "Deny" : "Approve";
    show("action", `${verb} ${r.user}'s request for SSH access to ${r.host} as ${r.account}, as ${d.user}`);
    show("approver", d.user);
    show("verdict", d.verdict + (d.comment ? ` — ${d.comment}` : ""));
    showRequest({ ...r, status: d.status });
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
