// The confirmation pages in a real browser, as a victim whose browser
// holds their key would meet them:
//
//   node pages.mjs CREDENTIAL_FILE USER MFA_URL MATCH_CODE
//
// 1. An attacker creates a sign-in for USER (anyone can) and sends the
//    victim /mfa/..%2Fsessions%2F<id> — the disguise that once showed
//    "Confirm SSH access" for a sign-in. The CA answers 404; no button.
// 2. The same link with the browser handed the real access-request page
//    anyway (as a careless proxy or an older CA would): the script refuses
//    the path; the button stays disabled.
// 3. /mfa/<sign-in id> with the page and a sign-in summary handed to the
//    browser under the access-request URL (a path-normalising proxy): the
//    script refuses a summary of another kind.
// 4. The sign-in's own page says it is a sign-in.
// 5. MFA_URL, the link the client printed: the page shows MATCH_CODE;
//    pressing Confirm confirms it.
// Prints one JSON line; the Rust test judges it. The sign-in must still
// be unconfirmed at the end (read back through the API).

import { readFileSync, writeFileSync } from "node:fs";
import { pressAndRead, withBrowser } from "./chromium.mjs";

const [credFile, user, mfaUrl, matchCode] = process.argv.slice(2);
if (!credFile || !user || !mfaUrl || !matchCode) {
  console.error("usage: node pages.mjs CREDENTIAL_FILE USER MFA_URL MATCH_CODE");
  process.exit(2);
}
const base = new URL(mfaUrl).origin;

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

// An element's text, or null when the page has no such element.
const text = (page, sel) =>
  page.locator(sel).first().textContent({ timeout: 2000 }).then((t) => (t || "").trim(), () => null);

// The page's error, or null if it shows none within 5 s (an old page
// that happily offered the wrong thing): the test reports, not hangs.
async function errorShown(page) {
  try {
    await page.waitForSelector("#result.error", { timeout: 5000 });
  } catch {
    return null;
  }
  return text(page, "#result");
}

// The victim presses Confirm if the page lets them (within 3 s); returns
// what the page then says, or null when there was nothing to press.
async function victimPresses(page) {
  const button = page.locator("#approve:not([disabled])");
  try {
    await button.waitFor({ timeout: 3000 });
  } catch {
    return null;
  }
  await button.click();
  await page.waitForSelector("#result.ok, #result.error");
  return text(page, "#result");
}

await withBrowser(async ({ page, cdp, authenticatorId }) => {
  for (const credential of JSON.parse(readFileSync(credFile, "utf8"))) {
    await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
  }
  const out = {};

  // 1. The attacker's sign-in, disguised as an access-request link.
  const signin = await api("POST", "/v1/sessions", { user });
  if (signin.status !== 201) throw new Error(`creating the sign-in: ${JSON.stringify(signin)}`);
  const sid = signin.body.id;
  out.session_id = sid;
  out.session_secret = signin.body.secret;
  const disguised = `${base}/mfa/..%2Fsessions%2F${sid}`;
  const res = await page.goto(disguised);
  out.disguised_status = res.status();
  out.disguised_text = await page.innerText("body");
  out.disguised_buttons = await page.locator("button").count();
  out.disguised_pressed = await victimPresses(page);

  // 2. The genuine access-request page served for the disguised path.
  const realPage = await (await fetch(mfaUrl)).text();
  const isDisguised = (u) => u.pathname === new URL(disguised).pathname;
  await page.route(isDisguised, (r) => r.fulfill({ status: 200, contentType: "text/html", body: realPage }));
  await page.goto(disguised);
  out.served_anyway_pressed = await victimPresses(page);
  out.served_anyway_result = await errorShown(page);
  out.served_anyway_button_disabled = await page.isDisabled("#approve");
  await page.unroute(isDisguised);

  // 3. A bare sign-in id on the access-request page, with a proxy that
  //    answers the request summary with the sign-in's.
  const bare = `${base}/mfa/${sid}`;
  const signinSummary = await api("GET", `/v1/sessions/${sid}/summary`);
  await page.route(bare, (r) => r.fulfill({ status: 200, contentType: "text/html", body: realPage }));
  await page.route(`${base}/v1/requests/${sid}/summary`, (r) =>
    r.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(signinSummary.body) }));
  await page.goto(bare);
  out.wrong_kind_pressed = await victimPresses(page);
  out.wrong_kind_result = await errorShown(page);
  out.wrong_kind_button_disabled = await page.isDisabled("#approve");
  await page.unrouteAll();

  // 4. The sign-in's own page (not pressed).
  await page.goto(`${base}/signin/${sid}`);
  await page.waitForFunction(() => document.getElementById("status").textContent !== "…");
  out.signin_heading = await text(page, "h1");
  out.signin_action = await text(page, "#action");
  out.signin_text = await page.innerText("body");
  out.signin_match_code = await text(page, "#match-code");

  // 5. The client's own link.
  await page.goto(mfaUrl);
  await page.waitForSelector("#approve:not([disabled])");
  out.mfa_match_code = await text(page, "#match-code");
  out.mfa_action = await text(page, "#action");
  out.mfa_result = await pressAndRead(page, "#approve");

  const after = await api("GET", `/v1/sessions/${sid}/summary`);
  out.session_status_after = after.body && after.body.status;

  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  writeFileSync(credFile, JSON.stringify(credentials), { mode: 0o600 });
  console.log(JSON.stringify(out));
});
