// A stand-in for the engineer's browser, for `jit-ssh login` tests:
//
//   node approve.mjs enroll ENROLL_URL CREDENTIAL_FILE
//       enrolls a virtual authenticator through the invite page and saves
//       its credential (private key included) to CREDENTIAL_FILE;
//   node approve.mjs approve MFA_URL CREDENTIAL_FILE
//       loads that credential into a fresh browser's virtual authenticator
//       and presses "Confirm" on the MFA page (jit-ssh runs this as $BROWSER).
//
// Debian's /usr/bin/chromium only; exits non-zero unless the page says so.

import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [mode, url, credFile] = process.argv.slice(2);
if (!["enroll", "approve"].includes(mode) || !url || !credFile) {
  console.error("usage: node approve.mjs enroll|approve URL CREDENTIAL_FILE");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "jit-ssh-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let ok = false;
try {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "usb", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  if (mode === "enroll") {
    await page.goto(url);
    await page.waitForSelector("#enroll:not([disabled])");
    await page.click("#enroll");
    await page.waitForSelector("#result.ok, #result.error");
    const text = await page.textContent("#result");
    if (!text.startsWith("Enrolled")) throw new Error(text);
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
  } else {
    for (const credential of JSON.parse(readFileSync(credFile, "utf8"))) {
      await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
    }
    await page.goto(url);
    await page.waitForSelector("#approve:not([disabled])");
    await page.click("#approve");
    await page.waitForSelector("#result.ok, #result.error");
    const text = await page.textContent("#result");
    console.log(text);
    // Keep the credential's signature counter: re-using an old copy makes
    // the counter go backwards, which the CA rightly refuses as a clone.
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
    // A policy denial is a completed ceremony too: the client reports it.
    if (!text.startsWith("Confirmed") && !text.startsWith("Denied")) throw new Error(text);
  }
  ok = true;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
