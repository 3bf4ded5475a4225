// The pages as a newcomer meets them (issue 13), in a browser whose zone
// is Asia/Kolkata (UTC+05:30, no daylight saving) and locale en-GB:
//
//   node first-look.mjs BASE_URL CREDENTIAL_DIR PUBLIC_KEY_LINE SHOT_DIR INVITE_URL
//
// CREDENTIAL_DIR holds alice.credential.json (engineer), carol… (approver)
// and sec… (security), as `approve.mjs enroll` saved them; one virtual
// authenticator holds all three (each ceremony allows only its user's).
//
// 1. `/`: what this CA is. 2. Alice asks twice for web access (MFA on
// /mfa/…). 3. Carol signs in on `/` and sees both. 4. She opens the
// first: her name is filled in, Deny looks destructive; she approves.
// 5. She denies the second with a reason. 6. Sec revokes alice's new
// certificate by its serial on /revoke/…. 7. Failed touches: a key
// nobody enrolled, and a key without user verification. 8. INVITE_URL, a
// second invite for alice, opened with the key she already enrolled.
// Each step saves a screenshot to SHOT_DIR and records the visible text
// (`innerText`) at that moment; prints one JSON line for the Rust test.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pressAndRead, withBrowser } from "./chromium.mjs";

const [base, credDir, publicKey, shots, inviteUrl] = process.argv.slice(2);
if (!base || !credDir || !publicKey || !shots || !inviteUrl) {
  console.error("usage: node first-look.mjs BASE_URL CREDENTIAL_DIR PUBLIC_KEY_LINE SHOT_DIR INVITE_URL");
  process.exit(2);
}

async function api(method, path, body, secret) {
  const headers = {};
  if (body) headers["content-type"] = "application/json";
  if (secret) headers.authorization = `Bearer ${secret}`;
  const res = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return { json: JSON.parse(text), text };
}

const credentials = (user) => JSON.parse(readFileSync(join(credDir, `${user}.credential.json`), "utf8"));

async function addAuthenticator(cdp, isUserVerified) {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "usb", hasResidentKey: true, hasUserVerification: true,
      isUserVerified, automaticPresenceSimulation: true },
  });
  return authenticatorId;
}

// A screenshot, and the text a person sees on it.
async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  return page.innerText("main");
}

// The <time> in `#id`: what it shows, and its hover text.
async function timeIn(page, sel) {
  const t = page.locator(`${sel} time`).first();
  return { text: (await t.textContent()).trim(), title: await t.getAttribute("title") };
}

async function newRequest(host) {
  const { json } = await api("POST", "/v1/requests", {
    user: "alice", host, account: "www", ttl: "5m", reason: "deploy hotfix", public_key: publicKey,
  });
  return json;
}

await withBrowser(async ({ page, cdp, authenticatorId }) => {
  for (const user of ["alice", "carol", "sec"]) {
    for (const credential of credentials(user)) {
      await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
    }
  }
  const out = {};

  // 1. The landing page.
  const res = await page.goto(`${base}/`);
  out.landing_status = res.status();
  out.landing_text = await shot(page, "landing");

  // 2. Alice's two requests, confirmed with her key.
  const r1 = await newRequest("web-1.test");
  const r2 = await newRequest("web-2.test");
  out.r1 = r1.id;
  out.r1_expires_at = r1.expires_at;
  await page.goto(r1.mfa_url);
  await page.waitForSelector("#approve:not([disabled])");
  out.mfa_expires = await timeIn(page, "#expires");
  out.mfa_result = await pressAndRead(page, "#approve");
  await page.goto(r2.mfa_url);
  out.mfa2_result = await pressAndRead(page, "#approve");

  // 3. Carol signs in on the landing page and sees what waits for her.
  await page.goto(`${base}/`);
  await page.fill("#signin-user", "carol");
  out.landing_signin_result = await pressAndRead(page, "#list-pending");
  out.landing_pending = await page.locator("#pending li").allInnerTexts();
  out.landing_signed_in_text = await shot(page, "landing-signed-in");

  // 4. She follows the link to the first request.
  await page.click(`#pending a[href="/approve/${r1.id}"]`);
  await page.waitForSelector("#approve-request:not([disabled])");
  out.approve_name = await page.inputValue("#approver");
  out.approve_expires = await timeIn(page, "#expires");
  const style = (sel) => page.$eval(sel, (el) => {
    const s = getComputedStyle(el);
    return { color: s.color, background: s.backgroundColor, border: s.borderTopColor };
  });
  out.deny_style = await style("#deny-request");
  out.approve_style = await style("#approve-request");
  out.approve_text = await shot(page, "approve");
  out.approve_result = await pressAndRead(page, "#approve-request");
  out.approve_status = (await page.textContent("#status")).trim();
  out.approve_done_text = await shot(page, "approved");

  // 5. The second: denied, with a reason.
  await page.goto(`${base}/approve/${r2.id}`);
  await page.waitForSelector("#deny-request:not([disabled])");
  await page.fill("#comment", "not during the freeze");
  out.deny_result = await pressAndRead(page, "#deny-request");
  out.deny_status = (await page.textContent("#status")).trim();
  out.denied_text = await shot(page, "denied");

  // 6. Sec revokes alice's new certificate by its serial, as the API
  //    gives it (a string).
  const state = (await api("GET", `/v1/requests/${r1.id}`, undefined, r1.secret)).json;
  out.issued_serial = state.certificate.serial;
  const rv = (await api("POST", "/v1/revocations", {
    user: "sec", target: { serial: state.certificate.serial }, reason: "laptop stolen",
  })).json;
  await page.goto(rv.mfa_url);
  await page.waitForSelector("#revoke:not([disabled])");
  out.revoke_action = (await page.textContent("#action")).trim();
  out.revoke_owner = (await page.textContent("#owner")).trim();
  out.revoke_owner_until = await timeIn(page, "#owner-until");
  out.revoke_text = await shot(page, "revoke");
  out.revoke_result = await pressAndRead(page, "#revoke");

  // 7. Failed touches. A key nobody enrolled: the only authenticator is
  //    a fresh one.
  const r3 = await newRequest("web-3.test");
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
  const stranger = await addAuthenticator(cdp, true);
  await page.goto(r3.mfa_url);
  out.wrong_key_result = await pressAndRead(page, "#approve");
  out.wrong_key_text = await shot(page, "wrong-key");
  // Alice's own key, but it cannot verify her (no PIN or biometric).
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: stranger });
  const noUv = await addAuthenticator(cdp, false);
  for (const credential of credentials("alice")) {
    await cdp.send("WebAuthn.addCredential", { authenticatorId: noUv, credential });
  }
  await page.goto(r3.mfa_url);
  out.no_uv_result = await pressAndRead(page, "#approve");
  out.r3_status_after = (await api("GET", `/v1/requests/${r3.id}/summary`)).json.status;

  // 8. Enrolling the key that is already enrolled.
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: noUv });
  const again = await addAuthenticator(cdp, true);
  for (const credential of credentials("alice")) {
    await cdp.send("WebAuthn.addCredential", { authenticatorId: again, credential });
  }
  await page.goto(inviteUrl);
  out.enroll_expires = await timeIn(page, "#expires");
  out.enroll_again_result = await pressAndRead(page, "#enroll");
  out.enroll_again_text = await shot(page, "enroll-again");

  console.log(JSON.stringify(out));
}, { timezoneId: "Asia/Kolkata", locale: "en-GB" });
