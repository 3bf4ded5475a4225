// jit-ssh pages: the landing page; enrolling a key; confirming an access
// request, a revocation, an approver's decision or a sign-in. Each page
// is bound to one kind of thing (RESOURCES) and says what the touch will
// do. Times and WebAuthn failures are put in words by jit-ssh-ui.js.
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

async function api(method, path, body, token) {
  const init = { method, headers: {} };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new CaError((data.error && data.error.message) || res.statusText);
  return data;
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

// `text` is a string, or parts for `withTimes` (strings and {time}).
function result(text, ok) {
  const el = document.getElementById("result");
  if (Array.isArray(text)) el.replaceChildren(...withTimes(text));
  else el.textContent = text;
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
  if (!pattern.test(seg)) throw new CaError("This link is damaged or not a jit-ssh link: nothing can be confirmed here. Use the link your terminal printed, unchanged.");
  return seg;
}

function checkedId(id) {
  if (typeof id !== "string" || !ID.test(id)) throw new CaError("The CA answered with a malformed id.");
  return id;
}

// An answer about `id` must be of the page's kind and about that id.
function bound(resource, id, r) {
  if (r.kind !== resource.kind || r.id !== id) {
    const what = KIND_TEXT[r.kind] || "something else";
    throw new CaError(`This link leads to ${what}, not ${KIND_TEXT[resource.kind]}: nothing was confirmed.`);
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

// Where a request stands, said to the person who asked for it...
const STATUS_TEXT = {
  pending_mfa: "waiting for your security key",
  pending_approval: "waiting for approval",
  issued: "issued — your terminal has the certificate",
  denied: "denied",
  expired: "expired",
  cancelled: "cancelled by the requester",
};
// ...and to an approver, for whom it is someone else's request.
function approverStatus(r) {
  switch (r.status) {
    case "pending_mfa": return `waiting for ${r.user} to confirm with their own key`;
    case "pending_approval": return "waiting for approval";
    case "issued": return `approved — the certificate was issued to ${r.user}`;
    case "denied": return "denied (the reason is shown to the requester and kept in the audit log)";
    case "expired": return "expired — nobody can decide it any more";
    case "cancelled": return `cancelled by ${r.user}`;
    default: return r.status;
  }
}

// The user name this browser last signed in as on the landing page, while
// that sign-in lasts. Only a convenience to fill in a name: the touch on
// the decision is what proves who decides (it accepts only that user's
// keys), so a wrong name here can only fail.
const SIGNED_IN = "jit-ssh.signed-in";
function signedInUser() {
  try {
    const s = JSON.parse(localStorage.getItem(SIGNED_IN) || "null");
    return s && typeof s.user === "string" && Date.parse(s.until) > Date.now() ? s.user : "";
  } catch {
    return "";
  }
}
function rememberSignIn(user, until) {
  try {
    localStorage.setItem(SIGNED_IN, JSON.stringify({ user, until }));
  } catch {
    // Storage refused (private mode): the name is typed instead.
  }
}

async function enrollPage() {
  const button = document.getElementById("enroll");
  let token;
  try {
    token = pathSegment(TOKEN);
    const invite = await api("GET", `/v1/enroll/${token}`);
    show("user", invite.user);
    showTime("expires", invite.expires_at);
    if (!webAuthnAvailable()) throw new CaError(explainWebAuthn({ name: "NotSupportedError" }).flat().join(" "));
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
      showFailure("Not enrolled", e, document.getElementById("user").textContent, true);
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
  // A decided request's deadline means nothing any more (and is not when
  // the certificate ends).
  if (["issued", "denied", "cancelled"].includes(r.status)) show("expires", "— (decided)");
  else showTime("expires", r.expires_at);
}

// The code the terminal printed next to the link, shown large.
function showMatchCode(r) {
  show("match-code", r.match_code);
}

// A page where the person confirms one thing of `resource`'s kind: show
// what the touch will do and the match code, and on the button press run
// the WebAuthn assertion. `verdict(r)` turns the answer into [message, ok];
// `who(r)` is the user whose key must confirm.
async function confirmPage(resource, buttonId, render, verdict, who = (r) => r.user) {
  const button = document.getElementById(buttonId);
  let id;
  let shown;
  try {
    id = pathSegment(ID);
    shown = await summaryOf(resource, id);
    render(shown);
    showMatchCode(shown);
    if (!webAuthnAvailable()) throw new CaError(explainWebAuthn({ name: "NotSupportedError" }).flat().join(" "));
    button.disabled = shown.status !== "pending_mfa";
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
      showFailure("Not confirmed", e, who(shown), false);
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
      ? [`Denied: ${r.decision || "by policy"}. Your terminal says the same; nothing was issued.`, false]
      : [`Confirmed: ${STATUS_TEXT[r.status] || r.status}.`, true]);

// What a revocation takes away, in words. Serials arrive as strings (a
// JavaScript number would round them) and are shown as they came.
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

// Whose certificate it is: "alice's certificate for oncall@db-1.dev".
function ownerText(r) {
  const c = r.certificate;
  if (c) return `${c.user}'s certificate for ${c.account}@${c.host}`;
  const [kind, value] = Object.entries(r.target)[0];
  if (kind === "user") return `every certificate of ${value}`;
  return "no certificate this CA issued (nothing will be revoked)";
}

const revokePage = () =>
  confirmPage(RESOURCES.revocations, "revoke", (r) => {
    show("action", r.certificate
      ? `Revoke ${ownerText(r)} (${targetText(r.target).replace(/^the certificate with /, "")})`
      : `Revoke ${targetText(r.target)}`);
    show("user", r.user);
    show("owner", ownerText(r));
    const until = document.getElementById("owner-until");
    until.replaceChildren(...(r.certificate ? withTimes(["valid until ", { time: r.certificate.valid_before }]) : []));
    show("target", targetText(r.target));
    show("reason", r.reason);
    showTime("expires", r.expires_at);
    show("status", r.status.replace("_", " ") + (r.outcome ? ` — ${r.outcome}` : ""));
  }, (r) =>
    r.status === "revoked" ? [`Revoked: ${r.outcome}`, true] : [`Not revoked: ${r.outcome}`, false]);

const signinPage = () =>
  confirmPage(RESOURCES.sessions, "signin", (s) => {
    show("action", `Sign in as ${s.user} to read the audit log and decide access requests`);
    show("user", s.user);
    showTime("expires", s.expires_at);
    show("status", s.status.replace("_", " ") + (s.roles && s.roles.length ? ` — roles: ${s.roles.join(", ")}` : ""));
  }, (s) =>
    s.status === "active"
      ? [["Signed in until ", { time: s.expires_at }, ". Your terminal can go on; you can close this page."], true]
      : [`Not signed in: ${s.status}`, false]);

function showApprovers(r) {
  const a = r.approval;
  if (!a) return show("approvers", "—");
  const done = a.approved_by.length ? `; approved by ${a.approved_by.join(", ")}` : "";
  show("approvers", `${a.approved_by.length} of ${a.needed}${done}`);
}

// What the approver's own decision did, in words for them (the CA's
// outcome says it; this says what happens next).
function decisionResult(d, r) {
  if (d.status !== "recorded") return [`Not recorded: ${d.outcome || d.status}.`, false];
  if (d.verdict === "deny") {
    return [`You denied ${r.user}'s request. Your reason, "${d.comment}", is shown to them in their terminal; nothing was issued.`, true];
  }
  if (r.status === "issued") {
    return [`Your approval is recorded, and it was the last one needed: the certificate was issued to ${r.user}, whose terminal now has it. You can close this page.`, true];
  }
  const a = r.approval;
  const left = a ? Math.max(a.needed - a.approved_by.length, 0) : 0;
  return [`Your approval is recorded${a ? ` (${a.approved_by.length} of ${a.needed})` : ""}. ` +
    (left ? `The request waits for ${left} more approver${left === 1 ? "" : "s"}.` : "The request is no longer waiting for you."), true];
}

// /approve/{request}: the approver decides and confirms with their own
// key in one go. The name is filled in from this browser's sign-in on the
// landing page when there is one (see `signedInUser`).
async function approvePage() {
  const buttons = ["approve-request", "deny-request"].map((b) => document.getElementById(b));
  const name = document.getElementById("approver");
  const comment = document.getElementById("comment");
  let id;
  let shown;
  const load = async (denial) => {
    const r = await summaryOf(RESOURCES.requests, id);
    shown = r;
    show("action", r.status === "pending_approval"
      ? `Decide whether ${r.user} gets SSH access to ${r.host} as ${r.account} for ${r.ttl}`
      : `${r.user}'s request for SSH access to ${r.host} as ${r.account}: ${r.status === "denied" ? "denied" : approverStatus(r)}`);
    showRequest(r);
    // The summary leaves out why it was denied; the approver who just
    // denied it knows, and sees it.
    show("status", r.status === "denied" && denial ? `denied: ${denial}` : approverStatus(r));
    showApprovers(r);
    buttons.forEach((b) => (b.disabled = r.status !== "pending_approval"));
  };
  try {
    id = pathSegment(ID);
    const me = signedInUser();
    if (me) {
      name.value = me;
      show("approver-note", `Filled in from your sign-in on this browser. Not ${me}? Type your own name.`);
    }
    await load();
    if (!webAuthnAvailable()) throw new CaError(explainWebAuthn({ name: "NotSupportedError" }).flat().join(" "));
  } catch (e) {
    show("action", "Nothing to decide.");
    buttons.forEach((b) => (b.disabled = true));
    result(e.message, false);
    return;
  }
  const decide = (verdict) => async () => {
    const user = name.value.trim();
    const why = comment.value.trim();
    if (!user) return result("Type your jit-ssh user name first: your key confirms it is you.", false);
    if (verdict === "deny" && !why) return result("Say why you deny it: the requester reads your reason.", false);
    buttons.forEach((b) => (b.disabled = true));
    try {
      const created = await api("POST", `${RESOURCES.requests.api}${checkedId(id)}/decisions`, { user, verdict, comment: why });
      const d = await touch(RESOURCES.decisions, created.id);
      if (d.request !== id) throw new CaError("The CA answered about another request.");
      await load(d.status === "recorded" && verdict === "deny" ? `${why} (by you)` : undefined);
      result(...decisionResult(d, shown));
    } catch (e) {
      showFailure("Not recorded", e, user, false);
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
  }, (d) => d.status === "recorded"
    ? [`Recorded: ${d.outcome}. Your terminal says the same.`, true]
    : [`Not recorded: ${d.outcome}.`, false], (d) => d.user);

// One pending request as a list item linking to its approve page.
function pendingItem(r) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = `/approve/${checkedId(r.id)}`;
  a.textContent = `${r.user} → ${r.account}@${r.host} for ${r.ttl}`;
  li.append(a, ...withTimes([`: ${r.reason} (decide by `, { time: r.expires_at }, ")"]));
  return li;
}

// `/`: what this CA is; approvers sign in with their key (a sign-in this
// page creates and confirms itself) and see what waits for them.
async function landingPage() {
  const button = document.getElementById("list-pending");
  const name = document.getElementById("signin-user");
  const list = document.getElementById("pending");
  name.value = signedInUser();
  if (!webAuthnAvailable()) {
    showFailure("Cannot sign in here", { name: "NotSupportedError" });
    return;
  }
  button.disabled = false;
  button.addEventListener("click", async () => {
    const user = name.value.trim();
    if (!user) return result("Type your jit-ssh user name first.", false);
    button.disabled = true;
    try {
      const created = await api("POST", RESOURCES.sessions.api.replace(/\/$/, ""), { user });
      const s = await touch(RESOURCES.sessions, checkedId(created.id));
      if (s.status !== "active") throw new CaError(`Not signed in: ${s.status}.`);
      rememberSignIn(s.user, s.expires_at);
      const token = `${created.id}.${created.secret}`;
      const { requests } = await api("GET", "/v1/requests", undefined, token);
      list.replaceChildren(...requests.map(pendingItem));
      document.getElementById("pending-section").hidden = false;
      result(requests.length
        ? `Signed in as ${s.user}. ${requests.length} request${requests.length === 1 ? " waits" : "s wait"} for your decision.`
        : `Signed in as ${s.user}. Nothing waits for your decision.`, true);
    } catch (e) {
      showFailure("Not signed in", e, user, false);
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "landing") landingPage();
  if (page === "enroll") enrollPage();
  if (page === "mfa") mfaPage();
  if (page === "revoke") revokePage();
  if (page === "signin") signinPage();
  if (page === "approve") approvePage();
  if (page === "decide") decidePage();
});
