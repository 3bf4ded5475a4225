// Debian's headless Chromium (never a downloaded browser) with a CDP
// virtual authenticator: CTAP2, resident keys, user verification on.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/// Runs `body({ page, cdp, authenticatorId })`, always closing the browser.
/// `options` adds Playwright context options (e.g. `timezoneId`, `locale`).
export async function withBrowser(body, options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "jit-ssh-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    ...options,
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
    return await body({ page, cdp, authenticatorId });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/// Presses `button` and returns the page's result text once it appears.
export async function pressAndRead(page, button) {
  await page.waitForSelector(`${button}:not([disabled])`);
  await page.click(button);
  await page.waitForSelector("#result.ok, #result.error");
  return page.textContent("#result");
}
