import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PatternsListener } from '../../src/patterns/listener.ts';
import type { PatternsReport } from '../../src/patterns/report.ts';

const child = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

/** Run `vnet …` in a process of its own; resolves with its exit code and output (killed after `timeoutMs`). */
function vnet(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VNET_LOG_LEVEL: 'silent' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

async function freePorts(n: number): Promise<number[]> {
  const ls = await Promise.all(Array.from({ length: n }, () => PatternsListener.open({ host: '127.0.0.1', port: 0 })));
  const ports = ls.map((l) => l.port);
  for (const l of ls) l.close();
  return ports;
}

describe('vnet patterns', () => {
  it('runs three worker processes that find each other and report as JSON; worker 0 prints per-round times', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`).join(',');
    const common = ['--peers', peers, '--pattern', 'all-to-all', '--size', '8KiB', '--rounds', '4', '--connect-timeout', '20000'];
    const [w0, w1, w2] = await Promise.all([
      vnet(['patterns', 'worker', '--index', '0', ...common]),
      vnet(['patterns', 'worker', '--index', '1', ...common, '--json']),
      vnet(['patterns', 'worker', '--index', '2', ...common, '--json']),
    ]);
    assert.equal(w0!.code, 0, w0!.stderr);
    assert.match(w0!.stdout, /^round {4}1 {2}\d+\.\d{3} ms$/m);
    assert.match(w0!.stdout, /^round {4}4 {2}\d+\.\d{3} ms$/m);
    assert.match(w0!.stdout, /all-to-all on 3 workers, 8192 B messages, 4 rounds/);
    for (const w of [w1!, w2!]) {
      assert.equal(w.code, 0, w.stderr);
      const r = JSON.parse(w.stdout) as PatternsReport;
      assert.equal(r.sentMessages, 8);
      assert.equal(r.receivedMessages, 8);
      assert.equal(r.roundMs.length, 4);
    }
  });

  it('runs N workers in one process with `run --json`', async () => {
    const r = await vnet(['patterns', 'run', '--pattern', 'tree', '--vms', '5', '--size', '1024', '--rounds', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { reports } = JSON.parse(r.stdout) as { reports: PatternsReport[] };
    assert.deepEqual(reports.map((x) => x.sentMessages), [6, 9, 3, 3, 3]);
  });

  it('exits 1 with the error code when the pattern is undefined, or a peer cannot be reached', async () => {
    const bad = await vnet(['patterns', 'run', '--pattern', 'mesh', '--vms', '7']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /vnet patterns: VNET_ERR_PATTERNS_CONFIG: mesh needs a VM count/);
    const [dead, mine] = await freePorts(2);
    const lost = await vnet(['patterns', 'worker', '--index', '1', '--peers', `127.0.0.1:${dead},127.0.0.1:${mine}`, '--pattern', 'bus', '--connect-timeout', '300']);
    assert.equal(lost.code, 1);
    assert.match(lost.stderr, new RegExp(`VNET_ERR_PATTERNS_CONNECT_TIMEOUT: not connected within 300 ms to worker 0 \\(127\\.0\\.0\\.1:${dead}\\)`));
  });
});
