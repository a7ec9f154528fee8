/**
 * Headless Chromium (the apt package) through playwright-core, for the browser tests.
 *
 * @module
 */
import { type Browser, chromium, type Page } from "playwright-core";

/** Launches the system's headless Chromium; close it with `browser.close()`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
    timeout: 20_000,
  });
}

/**
 * Polls `expression` in `page` every 100 ms until it is truthy; fails after
 * `timeout` ms. Playwright's waitForFunction evaluates with eval(), which a page
 * whose CSP forbids it (as the dashboard's does) refuses; page.evaluate goes
 * through the debugger protocol.
 */
export async function pollPage(page: Page, expression: string, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
