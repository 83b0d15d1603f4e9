import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { waitFor } from '../helpers/wait.ts';

/**
 * The web page's browser tests drive Debian's chromium through
 * playwright-core. Without /usr/bin/chromium they FAIL (CI installs the
 * `chromium` package), they never skip. Screenshots go to
 * $VNET_WEB_SCREENSHOT_DIR, else test-output/web-page/ in the repository
 * (gitignored); the tests print where.
 */

export const CHROMIUM = process.env.VNET_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const WAIT = { timeout: 15_000 };
/** Bounded, not a figure: the large drawing on a loaded 2-core machine. */
export const WAIT_LARGE = { timeout: 60_000 };

export const CHROMIUM_MISSING = `chromium not found at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium) or set VNET_CHROMIUM; the browser test cannot run without it`;

export const SCREENSHOT_DIR = process.env.VNET_WEB_SCREENSHOT_DIR !== undefined && process.env.VNET_WEB_SCREENSHOT_DIR !== ''
  ? process.env.VNET_WEB_SCREENSHOT_DIR
  : fileURLToPath(new URL('../../test-output/web-page/', import.meta.url));

export interface Browser {
  context: BrowserContext;
  /** Page errors and console errors (other than refused tokens) seen so far. */
  problems: string[];
  open(url: string): Promise<Page>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(viewport: { width: number; height: number }): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), CHROMIUM_MISSING);
  const profile = await mkdtemp(join(tmpdir(), 'vnet-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
  const problems: string[] = [];
  return {
    context,
    problems,
    async open(url) {
      const page = await context.newPage();
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        // A refused token (401) and a controller that is away (the restart test) are expected.
        if (msg.type() === 'error' && !/401|ERR_CONNECTION_REFUSED|WebSocket connection/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
      });
      await page.goto(url, WAIT);
      return page;
    },
    async screenshot(page, name) {
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path });
      return path;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Wait until `expression` is truthy in the page. (Playwright's waitForFunction evaluates a string
 * with eval inside the page, which the page's Content-Security-Policy rightly refuses; evaluate
 * goes through the debugger protocol, which it does not.)
 */
export async function until(page: Page, expression: string, timeoutMs = WAIT.timeout): Promise<void> {
  await waitFor(() => page.evaluate(expression), expression, timeoutMs);
}
