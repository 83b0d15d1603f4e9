import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startFixtureServer } from './api/api-fixture.ts';
import type { FixtureServer } from './api/api-fixture.ts';
import { FIXTURE_NOW } from './api/api-fixture.ts';
import { LARGE_SITES, LARGE_VMS, buildLargeModel, largeDeployment, starTraffic } from './api/large-deployment-fixture.ts';
import { SCREENSHOT_DIR, WAIT_LARGE, launchBrowser, until } from './web-browser.ts';
import type { Browser } from './web-browser.ts';

/**
 * The web page at 20 sites and 200 VMs (large-deployment-fixture.ts: a ring
 * through all the VMs), in Debian's chromium: it draws within bounded waits,
 * no two VMs (labels included) and no two sites overlap, edges are bundled
 * with full detail where the operator zooms or selects, sites collapse, and the
 * traffic matrix shows the ring (and then a star) by the inferred structure.
 * Screenshots go where web-browser.ts says (printed).
 */

const HOSTS = largeDeployment().hosts.length;

/** Pairs of boxes (x1, y1, x2, y2) that overlap, as "a / b" strings. */
const OVERLAPS = `(boxes) => {
  const out = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, b] = [boxes[i], boxes[j]];
    if (a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2) out.push(a.id + ' / ' + b.id);
  }
  return out;
}`;

/** The matrix's cells, read back from the canvas pixels: which (row, column) cells are coloured as traffic. */
const HEAT_CELLS = `(() => {
  const c = document.getElementById('matrix-canvas');
  const { cell, x0, y0, macs } = vnetMatrix;
  const dpr = c.width / c.clientWidth;
  const img = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const hot = [];
  for (let i = 0; i < macs.length; i++) for (let j = 0; j < macs.length; j++) {
    const x = Math.floor((x0 + j * cell + cell / 2) * dpr);
    const y = Math.floor((y0 + i * cell + cell / 2) * dpr);
    const k = (y * c.width + x) * 4;
    // Heat colours run from pale yellow to dark red (blue ≤ 138); empty and diagonal cells are grey-blue (blue ≥ 240).
    if (img[k + 2] < 180) hot.push([i, j]);
  }
  return { n: macs.length, hot };
})()`;

describe('web page at 20 sites and 200 VMs', () => {
  let f: FixtureServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    f = await startFixtureServer({ model: buildLargeModel() });
    browser = await launchBrowser({ width: 1400, height: 850 });
    console.log(`# web page screenshots: ${SCREENSHOT_DIR}`);
    page = await browser.open(`${f.server.url}/#token=${encodeURIComponent(f.token)}`);
  });

  after(async () => {
    await browser?.close();
    await f?.server.close();
  });

  it('draws every site, host and VM, with no two VMs (labels included) and no two sites overlapping, all in view', async () => {
    await page.waitForSelector('body[data-ready="true"]', WAIT_LARGE);
    await page.waitForSelector('#connection[data-state="live"]', WAIT_LARGE);
    assert.equal(await page.getAttribute('#summary', 'data-sites'), String(LARGE_SITES));
    assert.equal(await page.getAttribute('#summary', 'data-vms'), String(LARGE_VMS));
    assert.equal(await page.getAttribute('#graph', 'data-nodes'), String(LARGE_SITES + HOSTS + LARGE_VMS));
    const vmOverlaps = await page.evaluate(`(${OVERLAPS})(vnetGraph.nodes('.vm').map((n) => ({ id: n.id(), ...n.renderedBoundingBox({ includeLabels: true }) })))`);
    assert.deepEqual(vmOverlaps, []);
    const siteOverlaps = await page.evaluate(`(${OVERLAPS})(vnetGraph.nodes('.site').map((n) => ({ id: n.id(), ...n.renderedBoundingBox({ includeLabels: true }) })))`);
    assert.deepEqual(siteOverlaps, []);
    const inView = await page.evaluate(`(() => { const b = vnetGraph.elements().renderedBoundingBox(); return b.x1 >= -1 && b.y1 >= -1 && b.x2 <= vnetGraph.width() + 1 && b.y2 <= vnetGraph.height() + 1; })()`);
    assert.equal(inView, true, 'the whole drawing fits the panel');
    // Label policy: in the overview VM labels would be unreadably small, so they are not drawn; site names are.
    const vmLabelPx = (await page.evaluate(`vnetGraph.nodes('.vm')[0].pstyle('font-size').pfValue * vnetGraph.zoom()`)) as number;
    const vmMinPx = (await page.evaluate(`vnetGraph.nodes('.vm')[0].pstyle('min-zoomed-font-size').pfValue`)) as number;
    assert.ok(vmLabelPx < vmMinPx, `VM labels are not drawn in the overview (${vmLabelPx.toFixed(1)} px < ${vmMinPx} px)`);
    const siteLabelPx = (await page.evaluate(`vnetGraph.nodes('.site')[0].pstyle('font-size').pfValue * vnetGraph.zoom()`)) as number;
    assert.ok(siteLabelPx >= 12, `site names are readable in the overview (${siteLabelPx.toFixed(1)} px)`);
    await browser.screenshot(page, 'large-overview');
  });

  /** Tap an element as a click would (void: a cytoscape element is too big to send back). */
  const tap = (id: string): Promise<unknown> => page.evaluate(`void vnetGraph.getElementById(${JSON.stringify(id)}).emit('tap')`);

  it('bundles the edges: links between sites and the ring\'s VM-to-VM edges are drawn per site or host pair, not one by one', async () => {
    const counts = (await page.evaluate('({ ...document.getElementById("graph").dataset })')) as Record<string, string>;
    // 57 backbone and 5 fast-path links, 200 ring edges: links inside a site only are single, the rest bundled.
    assert.equal(counts.appEdges, '0');
    assert.ok(Number(counts.bundles) > 0);
    const drawn = (await page.evaluate(`vnetGraph.edges().length`)) as number;
    assert.ok(drawn < 100, `${drawn} edges drawn for 262 links and application edges`);
    // Never two edges between the same two sites: a link between sites is single only when it is the only one.
    const sitePairs = (await page.evaluate(`vnetGraph.edges('.link, .link-bundle').map((e) => {
      const site = (n) => (n.hasClass('site') ? n : n.parent()).id();
      return [site(e.source()), site(e.target())].sort().join(' ');
    })`)) as string[];
    const repeated = sitePairs.filter((p, i) => !p.split(' ').every((s, _, a) => s === a[0]) && sitePairs.indexOf(p) !== i);
    assert.deepEqual(repeated, []);
    // A bundle's members are listed when it is selected.
    await tap('bundle:link:lan|site-05');
    await page.waitForSelector('#selection-card:not([hidden])', WAIT_LARGE);
    assert.match((await page.textContent('#selection-title')) ?? '', /^4 links: lan – site-05$/);
    assert.match((await page.textContent('#selection')) ?? '', /hub – site-05-h1backbone, up/);
  });

  it('zooms to a site: it fills the panel, its VMs are labelled and its edges come in full detail', async () => {
    await page.click('#sites button[data-site="site-05"][data-action="zoom"]');
    await page.waitForSelector('#graph[data-focus="site-05"]', WAIT_LARGE);
    const box = (await page.evaluate(`vnetGraph.getElementById('site:site-05').renderedBoundingBox()`)) as { w: number; h: number };
    const panel = (await page.evaluate('[vnetGraph.width(), vnetGraph.height()]')) as [number, number];
    assert.ok(box.w > panel[0] * 0.5 || box.h > panel[1] * 0.5, 'the site fills the panel');
    const unreadable = await page.evaluate(`vnetGraph.nodes('.vm').filter((n) => n.parent().parent().id() === 'site:site-05'
      && n.pstyle('font-size').pfValue * vnetGraph.zoom() < n.pstyle('min-zoomed-font-size').pfValue).map((n) => n.id())`);
    assert.deepEqual(unreadable, []);
    // The site's links are single (to the hub, and its fast path to site-06); the ring's edges touching its VMs are VM to VM.
    assert.equal(await page.evaluate(`vnetGraph.getElementById('link:hub|site-05-h1').nonempty()`), true);
    assert.equal(await page.evaluate(`vnetGraph.getElementById('link:site-05-h1|site-06-h1').nonempty()`), true);
    const app = (await page.evaluate(`vnetGraph.edges('.app').map((e) => [e.source().parent().parent().id(), e.target().parent().parent().id()])`)) as [string, string][];
    assert.ok(app.length > 0);
    for (const [a, b] of app) assert.ok(a === 'site:site-05' || b === 'site:site-05', `${a} – ${b} touches the site`);
    await browser.screenshot(page, 'large-site-zoom');
    await page.click('#fit-all');
    await page.waitForSelector('#graph[data-focus=""]', WAIT_LARGE);
    assert.equal(await page.getAttribute('#graph', 'data-app-edges'), '0');
  });

  it('draws the selected VM\'s application edges in full', async () => {
    const vm = largeDeployment().vms[120]!;
    await tap(`vm:${vm.mac}`);
    await page.waitForSelector('#graph[data-app-edges="2"]', WAIT_LARGE);
    const ends = (await page.evaluate(`vnetGraph.edges('.app').map((e) => [e.source().id(), e.target().id()])`)) as [string, string][];
    for (const [a, b] of ends) assert.ok(a === `vm:${vm.mac}` || b === `vm:${vm.mac}`);
    await page.evaluate(`void vnetGraph.emit('tap')`);
  });

  it('collapses a site to one box and opens it again', async () => {
    const site = 'site-03';
    await page.click(`#sites button[data-site="${site}"][data-action="collapse"]`);
    await until(page, `vnetGraph.getElementById('site:${site}').isChildless()`, WAIT_LARGE.timeout);
    const label = (await page.evaluate(`vnetGraph.getElementById('site:${site}').data('label')`)) as string;
    assert.match(label, /^site-03\n2 hosts · \d+ VMs$/);
    const siteOverlaps = await page.evaluate(`(${OVERLAPS})(vnetGraph.nodes('.site').map((n) => ({ id: n.id(), ...n.renderedBoundingBox({ includeLabels: true }) })))`);
    assert.deepEqual(siteOverlaps, []);
    await page.click(`#sites button[data-site="${site}"][data-action="collapse"]`);
    await until(page, `vnetGraph.getElementById('site:${site}').isParent()`, WAIT_LARGE.timeout);
    assert.equal(await page.getAttribute('#graph', 'data-nodes'), String(LARGE_SITES + HOSTS + LARGE_VMS));
  });

  it('shows the ring in the traffic matrix as a band along the diagonal in structure order, scattered when sorted by name', async () => {
    await page.click('#tab-matrix');
    await page.waitForSelector(`#matrix-canvas[data-cells="${LARGE_VMS}"][data-order="structure"]`, WAIT_LARGE);
    // The canvas is laid out before the matrix arrives and is painted: wait for the paint.
    await until(page, `${HEAT_CELLS}.hot.length > 0`, WAIT_LARGE.timeout);
    const ring = (await page.evaluate(HEAT_CELLS)) as { n: number; hot: [number, number][] };
    const onBand = ([i, j]: [number, number]): boolean => (j - i + ring.n) % ring.n === 1 || (i - j + ring.n) % ring.n === 1;
    assert.equal(ring.hot.length, 2 * LARGE_VMS, 'each VM sends to both ring neighbours');
    assert.deepEqual(ring.hot.filter((c) => !onBand(c)), [], 'nothing off the band');
    await browser.screenshot(page, 'large-matrix-ring');

    // The readout names the cell under the pointer: row 0 sends to column 1, its ring neighbour.
    const geo = (await page.evaluate('({ x0: vnetMatrix.x0, y0: vnetMatrix.y0, cell: vnetMatrix.cell, macs: vnetMatrix.macs.slice(0, 2) })')) as { x0: number; y0: number; cell: number; macs: string[] };
    const canvas = (await page.locator('#matrix-canvas').boundingBox())!;
    await page.mouse.move(canvas.x + geo.x0 + geo.cell * 1.5, canvas.y + geo.y0 + geo.cell * 0.5);
    await page.waitForSelector(`#matrix-readout[data-src="${geo.macs[0]}"][data-dst="${geo.macs[1]}"]`, WAIT_LARGE);
    assert.match((await page.textContent('#matrix-readout')) ?? '', /^vm\d{3} → vm\d{3}: [\d.]+ (k|M)bit\/s$/);

    await page.selectOption('#matrix-order', 'name');
    await page.waitForSelector('#matrix-canvas[data-order="name"]', WAIT_LARGE);
    const byName = (await page.evaluate(HEAT_CELLS)) as { n: number; hot: [number, number][] };
    assert.equal(byName.hot.length, 2 * LARGE_VMS, 'the same traffic');
    assert.ok(byName.hot.filter(onBand).length < LARGE_VMS / 5, 'by name the ring is scattered');
    await browser.screenshot(page, 'large-matrix-by-name');
    await page.selectOption('#matrix-order', 'structure');
  });

  it('shows a star in the traffic matrix as its centre\'s full row and column, first', async () => {
    const d = largeDeployment();
    const centre = d.ring[77]!;
    const star = starTraffic(centre, d.ring);
    f.model.setMatrix({ at: FIXTURE_NOW + 1000, periodMs: 1000, vms: d.vms.map((v) => ({ mac: v.mac, ip: v.ip, host: v.host, name: v.name })), edges: star.matrix });
    f.model.setTopology({ class: 'star', centre, confidence: 0.9, edges: star.edges, detectedAt: FIXTURE_NOW + 1000, weightsAt: FIXTURE_NOW + 1000 });
    await until(page, `vnetMatrix.macs[0] === ${JSON.stringify(centre)} && vnetMatrix.rates.size === ${star.matrix.length}`, WAIT_LARGE.timeout);
    const cells = (await page.evaluate(HEAT_CELLS)) as { n: number; hot: [number, number][] };
    assert.equal(cells.hot.length, 2 * (LARGE_VMS - 1));
    assert.deepEqual(cells.hot.filter(([i, j]) => i !== 0 && j !== 0), [], 'only the centre\'s row and column');
    await browser.screenshot(page, 'large-matrix-star');
  });

  it('ran without script errors', () => {
    assert.deepEqual(browser.problems, []);
  });
});
