// Drives the jit-ssh pages in Debian's headless Chromium with a CDP
// virtual authenticator (CTAP2, user verification):
//
//   node webauthn-flow.mjs ENROLL_URL PUBLIC_KEY_LINE HOST ACCOUNT
//
// 1. enrolls through the invite page;
// 2. creates an access request for PUBLIC_KEY_LINE (as the client would);
// 3. approves it through its mfa_url page, and polls until it is issued;
// 4. checks that an authenticator without user verification cannot approve
//    a second request, which stays pending.
// Prints one JSON line with the issued certificate. Exits non-zero on any
// failure. SCREENSHOT_DIR=dir saves a picture of each page.

import { join } from "node:path";
import { pressAndRead, withBrowser } from "./chromium.mjs";

const [enrollUrl, publicKey, host, account] = process.argv.slice(2);
if (!enrollUrl || !publicKey || !host || !account) {
  console.error("usage: node webauthn-flow.mjs ENROLL_URL PUBLIC_KEY_LINE HOST ACCOUNT");
  process.exit(2);
}
const base = new URL(enrollUrl).origin;
const user = process.env.JIT_SSH_USER || "admin";
const shots = process.env.SCREENSHOT_DIR;

async function api(method, path, body, secret) {
  const headers = {};
  if (body) headers["content-type"] = "application/json";
  if (secret) headers.authorization = `Bearer ${secret}`;
  const res = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

async function newRequest(hostName) {
  return api("POST", "/v1/requests", {
    user, host: hostName, account, ttl: "10m", reason: "browser end-to-end test", public_key: publicKey,
  });
}

await withBrowser(async ({ page, cdp, authenticatorId }) => {
  // 1. Enroll.
  await page.goto(enrollUrl);
  const enrolled = await pressAndRead(page, "#enroll");
  if (shots) await page.screenshot({ path: join(shots, "enroll.png") });
  if (!enrolled.startsWith("Enrolled")) throw new Error(`enrollment failed: ${enrolled}`);

  // 2. + 3. Request, approve on the MFA page, poll.
  const created = await newRequest(host);
  await page.goto(created.mfa_url);
  await page.waitForSelector("#approve:not([disabled])");
  const shownHost = await page.textContent("#host");
  if (shownHost !== host) throw new Error(`MFA page shows host ${shownHost}, not ${host}`);
  const confirmed = await pressAndRead(page, "#approve");
  if (shots) await page.screenshot({ path: join(shots, "mfa.png") });
  if (!confirmed.startsWith("Confirmed")) throw new Error(`approval failed: ${confirmed}`);
  const state = await api("GET", `/v1/requests/${created.id}?wait=10`, undefined, created.secret);
  if (state.status !== "issued") throw new Error(`request is ${state.status}: ${state.reason}`);

  // 4. Without user verification the browser cannot satisfy the CA.
  await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
  const second = await newRequest(host);
  await page.goto(second.mfa_url);
  await page.waitForSelector("#approve:not([disabled])");
  await page.click("#approve");
  await page.waitForSelector("#result.error");
  const refused = await page.textContent("#result");
  const after = await api("GET", `/v1/requests/${second.id}`, undefined, second.secret);
  if (after.status !== "pending_mfa") throw new Error(`without UV the request became ${after.status}`);

  console.log(JSON.stringify({ request_id: created.id, certificate: state.certificate, without_uv: refused }));
});
