// A stand-in for the engineer's browser, for `jit-ssh login` tests:
//
//   node approve.mjs enroll ENROLL_URL CREDENTIAL_FILE
//       enrolls a virtual authenticator through the invite page and saves
//       its credential (private key included) to CREDENTIAL_FILE;
//   node approve.mjs approve MFA_URL CREDENTIAL_FILE
//       loads that credential into a fresh browser's virtual authenticator
//       and presses "Confirm" on the MFA, revocation or sign-in page
//       (jit-ssh runs this as $BROWSER).
//
// Debian's /usr/bin/chromium only; exits non-zero unless the page says so.

import { readFileSync, writeFileSync } from "node:fs";
import { pressAndRead, withBrowser } from "./chromium.mjs";

const [mode, url, credFile] = process.argv.slice(2);
if (!["enroll", "approve"].includes(mode) || !url || !credFile) {
  console.error("usage: node approve.mjs enroll|approve URL CREDENTIAL_FILE");
  process.exit(2);
}

await withBrowser(async ({ page, cdp, authenticatorId }) => {
  if (mode === "enroll") {
    await page.goto(url);
    const text = await pressAndRead(page, "#enroll");
    if (!text.startsWith("Enrolled")) throw new Error(text);
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
  } else {
    for (const credential of JSON.parse(readFileSync(credFile, "utf8"))) {
      await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
    }
    await page.goto(url);
    // Access requests are confirmed on /mfa/…, revocations on /revoke/…,
    // sign-ins on /signin/….
    const kind = new URL(url).pathname.split("/")[1];
    const button = { revoke: "#revoke", signin: "#signin" }[kind] || "#approve";
    const text = await pressAndRead(page, button);
    console.log(text);
    // Keep the credential's signature counter: re-using an old copy makes
    // the counter go backwards, which the CA rightly refuses as a clone.
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
    // A policy denial is a completed ceremony too: the client reports it.
    const completed = ["Confirmed", "Denied", "Revoked", "Not revoked", "Signed in"].some((p) => text.startsWith(p));
    if (!completed) throw new Error(text);
  }
});
