// A stand-in for the engineer's browser, for `jit-ssh login` tests:
//
//   node approve.mjs enroll ENROLL_URL CREDENTIAL_FILE
//       enrolls a virtual authenticator through the invite page and saves
//       its credential (private key included) to CREDENTIAL_FILE;
//   node approve.mjs decide APPROVE_URL CREDENTIAL_FILE USER [approve|deny] [COMMENT]
//       an approver on the /approve/ page: names themselves and decides;
//   node approve.mjs approve MFA_URL CREDENTIAL_FILE
//       loads that credential into a fresh browser's virtual authenticator
//       and presses "Confirm" on the MFA, revocation or sign-in page
//       (jit-ssh runs this as $BROWSER).
//
// Debian's /usr/bin/chromium only; exits non-zero unless the page says so.

import { readFileSync, writeFileSync } from "node:fs";
import { pressAndRead, withBrowser } from "./chromium.mjs";

const [mode, url, credFile, approver, verdict = "approve", comment = ""] = process.argv.slice(2);
if (!["enroll", "approve", "decide"].includes(mode) || !url || !credFile || (mode === "decide" && !approver)) {
  console.error("usage: node approve.mjs enroll|approve URL CREDENTIAL_FILE\n       node approve.mjs decide APPROVE_URL CREDENTIAL_FILE USER [approve|deny] [COMMENT]");
  process.exit(2);
}

async function loadCredentials(cdp, authenticatorId) {
  for (const credential of JSON.parse(readFileSync(credFile, "utf8"))) {
    await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
  }
}

// Keep the credential's signature counter: re-using an old copy makes
// the counter go backwards, which the CA rightly refuses as a clone.
async function saveCredentials(cdp, authenticatorId) {
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
}

await withBrowser(async ({ page, cdp, authenticatorId }) => {
  if (mode === "enroll") {
    await page.goto(url);
    const text = await pressAndRead(page, "#enroll");
    if (!text.startsWith("Enrolled")) throw new Error(text);
    await saveCredentials(cdp, authenticatorId);
  } else if (mode === "decide") {
    // An approver on /approve/{request}: names themselves, decides, and
    // confirms with their key. Prints the page's answer ("Recorded: …",
    // "Refused: …" or "Not recorded: …"); the test judges it.
    await loadCredentials(cdp, authenticatorId);
    await page.goto(url);
    await page.fill("#approver", approver);
    await page.fill("#comment", comment);
    const text = await pressAndRead(page, verdict === "deny" ? "#deny-request" : "#approve-request");
    console.log(text);
    await saveCredentials(cdp, authenticatorId);
  } else {
    await loadCredentials(cdp, authenticatorId);
    await page.goto(url);
    // Access requests are confirmed on /mfa/…, revocations on /revoke/…,
    // sign-ins on /signin/….
    const kind = new URL(url).pathname.split("/")[1];
    const button = { revoke: "#revoke", signin: "#signin", decide: "#decide" }[kind] || "#approve";
    const text = await pressAndRead(page, button);
    console.log(text);
    await saveCredentials(cdp, authenticatorId);
    // A policy denial is a completed ceremony too: the client reports it.
    const completed = ["Confirmed", "Denied", "Revoked", "Not revoked", "Signed in", "Recorded", "Refused"].some((p) => text.startsWith(p));
    if (!completed) throw new Error(text);
  }
});
