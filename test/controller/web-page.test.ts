import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { buildFixtureModel, startFixtureServer } from './api/api-fixture.ts';
import type { FixtureServer } from './api/api-fixture.ts';
import { CHROMIUM, CHROMIUM_MISSING, SCREENSHOT_DIR, WAIT, launchBrowser, until } from './web-browser.ts';
import type { Browser } from './web-browser.ts';

/**
 * The live topology page in a real browser (web-browser.ts: Debian's
 * chromium, driven by playwright-core), against the API server backed by the
 * in-memory model. Needs no root, so it runs in the unit tier. The page at 20
 * sites and 200 VMs: web-page-scale.test.ts.
 */

it('finds the chromium browser it drives', () => {
  assert.ok(existsSync(CHROMIUM), CHROMIUM_MISSING);
});

describe('web page: live topology', () => {
  let f: FixtureServer;
  let browser: Browser;

  const screenshot = async (page: Page, name: string): Promise<void> => {
    await browser.screenshot(page, name);
  };
  const openPage = (fragment: string): Promise<Page> => browser.open(`${f.server.url}/${fragment}`);

  before(async () => {
    f = await startFixtureServer();
    browser = await launchBrowser({ width: 1400, height: 850 });
    console.log(`# web page screenshots: ${SCREENSHOT_DIR}`);
  });

  after(async () => {
    await browser?.close();
    await f?.server.close();
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
    await until(page, 'document.getElementById("selection-title").textContent === "VM vm5"');
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
    await until(page, 'vnetGraph.getElementById("vm:02:00:00:00:00:08").data("progress") === 80');
    // Done, with the cutover figures in the panel; the node shows no progress any more.
    f.model.putMigration({
      ...f.model.getMigration('m1')!, state: 'succeeded', step: 'done', phase: 'done', progress: 1,
      cutover: { timeMs: 35, pausedAt: 1, acknowledgedAt: 36, held: 15, flushed: 15, relayed: 5, lost: 0, announced: 2, spans: null },
    });
    await page.waitForSelector('[data-migration="m1"][data-step="done"]', WAIT);
    assert.match((await page.textContent('[data-migration="m1"] .detail')) ?? '', /cutover 35 ms · held 15 · flushed 15 · relayed 5 · lost 0/);
    await until(page, 'vnetGraph.getElementById("vm:02:00:00:00:00:08").data("progress") === -1');
    await screenshot(page, 'topology-link-added');

    const del = await fetch(`${f.server.url}/api/v1/links/aws-2/gcp-1`, { method: 'DELETE', headers: { authorization: `Bearer ${f.token}` } });
    assert.equal(del.status, 200);
    await page.waitForSelector('#summary[data-links="5"][data-fast-path-links="1"]', WAIT);
    assert.equal(await page.evaluate('window.vnetMarker'), 42, 'the page was not reloaded');
    await page.close();
  });

  it('shows the scheduling policy, its current and best scores, and each proposed or started move with its reason and estimated cost', async () => {
    const page = await openPage(`#token=${encodeURIComponent(f.token)}`);
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    const before = f.model.getPlacement();
    const reason = (vm: string): string => `move ${vm} aws-1→gcp-1: aws is being reclaimed (billing hour turns in 12 min); gain 2000 $, cost 0.210 (2.31 GiB, 31.00 s), net 2000 > T = 0.050`;
    f.model.setPlacement({
      computedAt: Date.now(), score: -2000.4, proposedScore: -0.4, threshold: 0.05, policy: 'spot-market', unit: '$', notes: ['aws: 2 VM(s) at $0.300/h, being reclaimed'],
      moves: [
        { vm: '02:00:00:00:00:01', from: 'aws-1', to: 'gcp-1', gain: 1000, reason: reason('vm1'), kind: 'move', cost: 0.21, bytes: 2.31 * 2 ** 30, seconds: 31, state: 'started' },
        { vm: '02:00:00:00:00:02', from: 'aws-1', to: 'gcp-1', gain: 1000, reason: reason('vm2'), kind: 'move', cost: 0.21, bytes: 2.31 * 2 ** 30, seconds: 31, state: 'proposed' },
      ],
    });
    await page.waitForSelector('#placement-detail:has-text("policy spot-market")', WAIT);
    assert.equal(await page.textContent('#placement-detail'), 'policy spot-market: score -2000.40 now, best -0.40 $ (net gain must beat T = 0.05)');
    const items = await page.locator('#placement li').allTextContents();
    assert.equal(items.length, 2);
    assert.match(items[0]!, /^vm1: aws-1 → gcp-1 \(started\)\+1000\.00, cost 0\.21 \(2\.31 GiB, 31 s\)move vm1 aws-1→gcp-1: aws is being reclaimed/);
    assert.match(items[1]!, /^vm2: aws-1 → gcp-1\+1000\.00, cost 0\.21/);
    // Nothing to move: the card stays, with the policy, its scores and why the best action was refused.
    f.model.setPlacement({ computedAt: Date.now(), score: -1.2, proposedScore: -1.2, threshold: 0.05, policy: 'spot-market', unit: '$', moves: [], refused: 'refused: move vm1 …: its cost exceeds its gain', policyTime: Date.parse('2026-12-08T03:00:00Z'), speedup: 720 });
    await page.waitForSelector('#placement-detail:has-text("its cost exceeds its gain")', WAIT);
    // Under scheduler.clock: the time the policy saw, and how much faster its clock runs.
    assert.match((await page.textContent('#placement-detail')) ?? '', /; policy time 2026-12-08 03:00 UTC \(×720\); refused: move vm1/);
    assert.equal(await page.locator('#placement-card').isHidden(), false);
    assert.equal(await page.locator('#placement li').count(), 0);
    f.model.setPlacement(before);
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

  it('shows the traffic matrix with the VMs named along its axes and a readout of the cell under the pointer', async () => {
    const page = await openPage(`#token=${encodeURIComponent(f.token)}`);
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    await page.click('#tab-matrix');
    await page.waitForSelector('#matrix-canvas[data-cells="8"]', WAIT);
    // Big enough cells get names (the order: the inferred ring vm1, vm3, vm5, vm7 first).
    const geo = (await page.evaluate('({ x0: vnetMatrix.x0, y0: vnetMatrix.y0, cell: vnetMatrix.cell, macs: vnetMatrix.macs })')) as { x0: number; y0: number; cell: number; macs: string[] };
    assert.ok(geo.cell >= 12);
    assert.deepEqual(geo.macs.slice(0, 4), ['02:00:00:00:00:01', '02:00:00:00:00:03', '02:00:00:00:00:05', '02:00:00:00:00:07']);
    const canvas = (await page.locator('#matrix-canvas').boundingBox())!;
    // Row vm1, column vm5: 1 MB/s.
    await page.mouse.move(canvas.x + geo.x0 + geo.cell * 2.5, canvas.y + geo.y0 + geo.cell * 0.5);
    await page.waitForSelector('#matrix-readout[data-src="02:00:00:00:00:01"][data-dst="02:00:00:00:00:05"]', WAIT);
    assert.equal(await page.textContent('#matrix-readout'), 'vm1 → vm5: 8.0 Mbit/s');
    await screenshot(page, 'small-matrix');
    await page.close();
  });

  it('says it is disconnected while the controller restarts, retries, and resumes with the new controller\'s state', async () => {
    const page = await openPage(`#token=${encodeURIComponent(f.token)}`);
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    assert.equal(await page.getAttribute('#summary', 'data-hosts'), '5');
    const seqBefore = Number(await page.getAttribute('#summary', 'data-seq'));
    const port = Number(new URL(f.server.url).port);
    await f.server.close();
    await page.waitForSelector('#connection[data-state="offline"]', WAIT);
    await page.waitForSelector('#offline-banner:not([hidden])', WAIT);
    assert.match((await page.textContent('#offline-banner')) ?? '', /Disconnected from the controller: retrying in \d+ s \(attempt \d+\)/);
    // Retrying with backoff while nothing answers: a second attempt fails too.
    await until(page, 'Number(document.getElementById("connection").dataset.attempt) >= 2');
    await screenshot(page, 'small-disconnected');

    // The controller comes back on the same address with the same token but another state, and a
    // history whose seq runs past the page's (as a restored store's would): resuming the stream by
    // seq would miss the changes, so the page must start over from a snapshot.
    const model = buildFixtureModel();
    model.putHost({ id: 'gcp-3', site: 'gcp', addresses: [], role: 'spoke', state: 'up', lastSeen: null, hub: 'hub', hubState: null });
    model.removeHost('gcp-2');
    while (model.latestSeq() < seqBefore + 5) model.addDecision({ kind: 'topology-changed', reason: 'history after the restart', detail: {} });
    f = await startFixtureServer({ port, model, tokens: f.tokens });
    await page.waitForSelector('#connection[data-state="live"]', WAIT);
    await page.waitForSelector('#offline-banner', { state: 'hidden', ...WAIT });
    await page.waitForSelector('#summary[data-hosts="5"][data-hosts-up="5"]', WAIT);
    assert.equal(await page.evaluate('vnetGraph.getElementById("host:gcp-3").nonempty()'), true);
    assert.equal(await page.evaluate('vnetGraph.getElementById("host:gcp-2").empty()'), true);
    // And it follows the new controller's stream.
    model.putHost({ id: 'gcp-4', site: 'gcp', addresses: [], role: 'spoke', state: 'up', lastSeen: null, hub: 'hub', hubState: null });
    await page.waitForSelector('#summary[data-hosts="6"]', WAIT);
    await screenshot(page, 'small-reconnected');
    await page.close();
  });

  it('ran without script errors', () => {
    assert.deepEqual(browser.problems, []);
  });
});
