/**
 * `vnet demo` as a user runs it: starts, serves the web page and the API,
 * brings every host up with traffic flowing and a topology inferred, and
 * exits cleanly on SIGINT.
 *
 * Each step is named: a failing one says which step, what it waited for or
 * saw, and the demo's last output lines (test/helpers/watched-child.ts).
 * The test's own timeout is above the sum of the steps' bounds, so a step's
 * message, not a bare "test timed out", is what a slow run reports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WatchedChild } from '../helpers/watched-child.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

describe('vnet demo', { timeout: 240_000 }, () => {
  it('starts, serves the page, infers the traffic pattern, and exits cleanly on SIGINT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-demo-test-'));
    const demo = WatchedChild.spawn(process.execPath, [VNET, 'demo', '--ephemeral-ports', '--work-dir', dir, '--pattern', 'ring', '--summary-every', '0.5'], {
      env: { ...process.env, VNET_LOG_LEVEL: 'warn' },
    });
    try {
      // The header is written line by line: wait for its last line before reading any of it.
      await demo.step('the demo prints its header', () => demo.waitForOutput(/^Ctrl-C to stop\.\n/m, 60_000));
      const page = /^web page:\s+(\S+)\n/m.exec(demo.output)?.[1];
      const api = /^API:\s+(\S+)/m.exec(demo.output)?.[1];
      await demo.step('the header names the page and the API', () => {
        assert.ok(page !== undefined, 'a "web page:" line');
        assert.ok(api !== undefined, 'an "API:" line');
      });
      await demo.step('the web page is served', async () => {
        const html = await fetch(page!.split('#')[0]!, { signal: AbortSignal.timeout(20_000) });
        assert.equal(html.status, 200, `GET ${page!.split('#')[0]}`);
        assert.match(await html.text(), /<html/i);
      });
      const token = readFileSync(join(dir, 'api-token'), 'utf8').trim();
      await demo.step('the page URL carries the API token', () => {
        assert.ok(page!.includes(encodeURIComponent(token)), `the printed page URL carries the API token in its fragment: ${page}`);
      });
      await demo.step('the API lists the hosts', async () => {
        const hosts = await fetch(`${api}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) });
        assert.equal(hosts.status, 200, `GET ${api}/api/v1/hosts`);
        assert.equal(((await hosts.json()) as { hosts: unknown[] }).hosts.length, 5, 'the bsp-8 deployment has five hosts');
      });
      await demo.step('every host connected to the controller', () => demo.waitForOutput(/hosts 5\/5 up/, 30_000));
      await demo.step('the ring traffic recognised', () => demo.waitForOutput(/inferred: ring/, 40_000));
      await demo.step('the summary line shows traffic, migrations and frames lost', () => {
        const last = demo.lastLine(/MB sent/);
        const sent = /traffic "ring": ([\d.]+) MB sent/.exec(last ?? '');
        assert.ok(Number(sent?.[1]) > 0, `traffic flowing: ${last}`);
        assert.match(demo.output, /\| migrations 0 \(ok 0\), frames lost \d+\n/, 'the summary line counts migrations and frames lost');
        assert.match(demo.output, /migrate:\s+vnet ctl migrate bsp-0 --to c2 --watch/, 'and says how to move a VM');
      });
      demo.kill('SIGINT');
      const exit = await demo.step('the demo exits on SIGINT', () => demo.exit(30_000));
      await demo.step('the demo stopped cleanly', () => {
        assert.deepEqual(exit, { code: 0, signal: null }, 'exit code 0');
        assert.match(demo.output, /stopped cleanly/);
      });
    } finally {
      demo.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
