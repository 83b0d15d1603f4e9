import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { startFixtureServer } from './api/api-fixture.ts';
import type { FixtureServer } from './api/api-fixture.ts';

/**
 * The live topology page in a real browser: Debian's chromium, driven by
 * playwright-core, against the API server backed by the in-memory model.
 * Needs no root, so it runs in the unit tier; without /usr/bin/chromium it
 * FAILS (CI installs the `chromium` package), it never skips.
 * Set VNET_WEB_SCREENSHOT_DIR to keep screenshots of the page.
 */

const CHROMIUM = process.env.VNET_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = { timeout: 15_000 };

const CHROMIUM_MISSING = `chromium not found at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium) or set VNET_CHROMIUM; the browser test cannot run without it`;

it('finds the chromium browser it drives', () => {
  assert.ok(existsSync(CHROMIUM), CHROMIUM_MISSING);
});

describe('web page: live topology', () => {
  let f: FixtureServer;
  let profile: string;
  let context: BrowserContext;
  const problems: string[] = [];

  async function screenshot(page: Page, name: string): Promise<void> {
    const dir = process.env.VNET_WEB_SCREENSHOT_DIR;
    if (dir === undefined || dir === '') return;
    await mkdir(dir, { recursive: true });
    await page.screenshot({ path: join(dir, `${name}.png`) });
  }

  async function openPage(fragment: string): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/401/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
    });
    await page.goto(`${f.server.url}/${fragment}`, WAIT);
    return page;
  }

  before(async () => {
    assert.ok(existsSync(CHROMIUM), CHROMIUM_MISSING);
    f = await startFixtureServer();
    profile = await mkdtemp(join(tmpdir(), 'vnet-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 850 } });
  });

  after(async () => {
    await context?.close();
    await f?.server.close();
    if (profile !== undefined) await rm(profile, { recursive: true, force: true });
  });

  it('shows the right number of sites, hosts, VMs and links, the topology class and the migration', async () => {
    const page = await openPage(`#token=${encodeURIComponent(f.token)}`);
    await page.waitForSelector('body[data-ready="true"]', WAIT);
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    const counts = (await page.evaluate('({ ...document.getElementById("summary").dataset })')) as Record<string, string>;
    assert.equal(counts.sites, '3');
    assert.equal(counts.hosts, '5');
    assert.equal(counts.hostsUp, '4');
    assert.equal(counts.vms, '8');
    assert.equal(counts.links, '5');
    assert.equal(counts.fastPathLinks, '1');
    assert.equal(counts.topologyClass, 'ring');
    assert.equal(await page.textContent('#topology-class'), 'ring');
    // The graph holds the 3 sites + 5 hosts + 8 VMs and the 5 links.
    assert.equal(await page.getAttribute('#graph', 'data-nodes'), '16');
    assert.equal(await page.getAttribute('#graph', 'data-edges'), '5');
    assert.equal(await page.getAttribute('[data-migration="m1"]', 'data-progress'), '42');
    assert.equal(await page.getAttribute('[data-migration="m1"]', 'data-step'), 'transfer');
    assert.match((await page.textContent('[data-migration="m1"] .detail')) ?? '', /round 3 · 61000 pages left · 1200 pages\/s dirtied/);
    // The migrating VM's node carries the progress (a pie over the node, and in its label).
    assert.equal(await page.evaluate('vnetGraph.getElementById("vm:02:00:00:00:00:08").data("progress")'), 42);
    assert.equal(await page.evaluate('vnetGraph.getElementById("vm:02:00:00:00:00:08").data("label")'), 'vm8 42%');
    assert.equal(await page.locator('#links tbody tr').count(), 5);
    assert.match((await page.textContent('#placement')) ?? '', /vm7: gcp-2 → gcp-1\s*\+0\.13/);
    // Clicking a host or a VM shows its details.
    const box = (await page.locator('#graph').boundingBox())!;
    const clickNode = async (id: string): Promise<void> => {
      const p = (await page.evaluate(`vnetGraph.getElementById(${JSON.stringify(id)}).renderedPosition()`)) as { x: number; y: number };
      await page.mouse.click(box.x + p.x, box.y + p.y);
    };
    await clickNode('host:hub');
    await page.waitForSelector('#selection-card:not([hidden])', WAIT);
    assert.equal(await page.textContent('#selection-title'), 'Host hub');
    await clickNode('vm:02:00:00:00:00:05');
    await page.waitForFunction('document.getElementById("selection-title").textContent === "VM vm5"', undefined, WAIT);
    assert.match((await page.textContent('#selection')) ?? '', /10\.10\.0\.5/);
    // The token left the address bar.
    assert.equal(await page.evaluate('location.hash'), '');
    await screenshot(page, 'topology');
    await page.close();
  });

  it('changes without a reload when a link is added and removed through the API, and follows traffic and a migration', async () => {
    const page = await openPage(`#token=${encodeURIComponent(f.token)}`);
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    // A marker that a reload would wipe.
    await page.evaluate('window.vnetMarker = 42');

    const add = await fetch(`${f.server.url}/api/v1/links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ a: 'aws-2', b: 'gcp-1', reason: 'browser test' }),
    });
    assert.equal(add.status, 201);
    await page.waitForSelector('#summary[data-links="6"][data-fast-path-links="2"]', WAIT);
    await page.waitForSelector('#graph[data-edges="6"]', WAIT);
    assert.equal(await page.evaluate('window.vnetMarker'), 42, 'the page was not reloaded');

    // A traffic report: the link's rate changes in place.
    f.model.setTraffic(Date.now(), [{ a: 'aws-2', b: 'hub', bytes: 1e9, frames: 1e6, bytesPerSec: 5_000_000, framesPerSec: 4000 }]);
    await page.waitForSelector('#links tbody tr:has-text("aws-2 – hub"):has-text("40.0 Mbit/s")', WAIT);

    f.model.putMigration({ ...f.model.getMigration('m1')!, phase: 'stop-and-copy', progress: 0.8, etaMs: 2000 });
    await page.waitForSelector('[data-migration="m1"][data-progress="80"]', WAIT);
    await page.waitForFunction('vnetGraph.getElementById("vm:02:00:00:00:00:08").data("progress") === 80', undefined, WAIT);
    // Done, with the cutover figures in the panel; the node shows no progress any more.
    f.model.putMigration({
      ...f.model.getMigration('m1')!, state: 'succeeded', step: 'done', phase: 'done', progress: 1,
      cutover: { timeMs: 35, pausedAt: 1, acknowledgedAt: 36, held: 15, flushed: 15, relayed: 5, lost: 0, announced: 2 },
    });
    await page.waitForSelector('[data-migration="m1"][data-step="done"]', WAIT);
    assert.match((await page.textContent('[data-migration="m1"] .detail')) ?? '', /cutover 35 ms · held 15 · flushed 15 · relayed 5 · lost 0/);
    await page.waitForFunction('vnetGraph.getElementById("vm:02:00:00:00:00:08").data("progress") === -1', undefined, WAIT);
    await screenshot(page, 'topology-link-added');

    const del = await fetch(`${f.server.url}/api/v1/links/aws-2/gcp-1`, { method: 'DELETE', headers: { authorization: `Bearer ${f.token}` } });
    assert.equal(del.status, 200);
    await page.waitForSelector('#summary[data-links="5"][data-fast-path-links="1"]', WAIT);
    assert.equal(await page.evaluate('window.vnetMarker'), 42, 'the page was not reloaded');
    await page.close();
  });

  it('asks for a token when it has none or the controller refuses it', async () => {
    const page = await openPage('#token=vnet_wrong');
    await page.waitForSelector('#token-dialog[open]', WAIT);
    assert.match((await page.textContent('#token-error')) ?? '', /refused/);
    await page.fill('#token-input', f.token);
    await page.click('#token-form button');
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    assert.equal(await page.getAttribute('#summary', 'data-hosts'), '5');
    await page.close();
  });

  it('ran without script errors', () => {
    assert.deepEqual(problems, []);
  });
});
