/**
 * `vnet demo` as a user runs it: starts, serves the web page and the API,
 * brings every host up with traffic flowing and a topology inferred, and
 * exits cleanly on SIGINT.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitFor } from '../helpers/wait.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

describe('vnet demo', { timeout: 90_000 }, () => {
  it('starts, serves the page, infers the traffic pattern, and exits cleanly on SIGINT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-demo-test-'));
    const child = spawn(process.execPath, [VNET, 'demo', '--ephemeral-ports', '--work-dir', dir, '--pattern', 'ring', '--summary-every', '0.5'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VNET_LOG_LEVEL: 'warn' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const page = await waitFor(() => /web page:\s+(\S+)/.exec(out)?.[1], 'the page URL', 30_000);
      const api = /API:\s+(\S+)/.exec(out)![1]!;
      const html = await fetch(page.split('#')[0]!);
      assert.equal(html.status, 200);
      assert.match(await html.text(), /<html/i);
      const token = readFileSync(join(dir, 'api-token'), 'utf8').trim();
      assert.ok(page.includes(encodeURIComponent(token)), 'the printed page URL carries the API token in its fragment');
      const hosts = await fetch(`${api}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(hosts.status, 200);
      assert.equal(((await hosts.json()) as { hosts: unknown[] }).hosts.length, 5, 'the bsp-8 deployment has five hosts');
      await waitFor(() => /hosts 5\/5 up/.test(out), 'every host connected to the controller', 30_000);
      await waitFor(() => /inferred: ring/.test(out), 'the ring traffic recognised', 40_000);
      const sent = /traffic "ring": ([\d.]+) MB sent/.exec(out.split('\n').reverse().find((l) => l.includes('MB sent')) ?? '');
      assert.ok(Number(sent?.[1]) > 0, 'traffic flowing');
      assert.match(out, /\| migrations 0 \(ok 0\), frames lost \d+\n/, 'the summary line counts migrations and frames lost');
      assert.match(out, /migrate:\s+vnet ctl migrate bsp-0 --to c2 --watch/, 'and says how to move a VM');
      child.kill('SIGINT');
      assert.equal(await exited, 0, `demo exit code; output:\n${out}`);
      assert.match(out, /stopped cleanly/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
