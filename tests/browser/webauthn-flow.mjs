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

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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

const profile = mkdtempSync(join(tmpdir(), "jit-ssh-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "usb", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });

  // 1. Enroll.
  await page.goto(enrollUrl);
  await page.waitForSelector("#enroll:not([disabled])");
  await page.click("#enroll");
  await page.waitForSelector("#result.ok, #result.error");
  const enrolled = await page.textContent("#result");
  if (shots) await page.screenshot({ path: join(shots, "enroll.png") });
  if (!enrolled.startsWith("Enrolled")) throw new Error(`enrollment failed: ${enrolled}`);

  // 2. + 3. Request, approve on the MFA page, poll.
  const created = await newRequest(host);
  await page.goto(created.mfa_url);
  await page.waitForSelector("#approve:not([disabled])");
  const shownHost = await page.textContent("#host");
  if (shownHost !== host) throw new Error(`MFA page shows host ${shownHost}, not ${host}`);
  await page.click("#approve");
  await page.waitForSelector("#result.ok, #result.error");
  if (shots) await page.screenshot({ path: join(shots, "mfa.png") });
  const confirmed = await page.textContent("#result");
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
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
