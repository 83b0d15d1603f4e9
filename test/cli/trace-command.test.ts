import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { traceCommand } from '../../src/cli/trace-command.ts';
import { diffMemory, encodeTrace } from '../../src/migration/qemu/trace-format.ts';

const dir = mkdtempSync(join(tmpdir(), 'vnet-cli-trace-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run `vnet trace ARGS…` in-process, capturing what it prints and the exit code it sets. */
async function trace(...args: string[]): Promise<{ out: string; err: string; exitCode: number }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  const before = process.exitCode;
  process.exitCode = 0;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    const cmd = traceCommand();
    // Commander settings do not reach subcommands made before them: set them on each.
    for (const c of [cmd, ...cmd.commands]) c.exitOverride().configureOutput({ writeErr: (s) => void err.push(s), writeOut: (s) => void out.push(s) });
    await cmd.parseAsync(args, { from: 'user' });
    return { out: out.join('\n'), err: err.join('\n'), exitCode: Number(process.exitCode ?? 0) };
  } finally {
    console.log = log;
    console.error = error;
    process.exitCode = before;
  }
}

/** 16 pages; snapshot 1, 500 ms later, changes pages 2 and 3 (one byte each). */
function writeSample(): string {
  const a = new Uint8Array(16 * 4096);
  a.fill(7, 0, 4 * 4096);
  const b = a.slice();
  b[2 * 4096] = 1;
  b[3 * 4096] = 1;
  const s0 = diffMemory(undefined, a, 4096);
  const s1 = diffMemory(a, b, 4096);
  const meta = { workload: 'cli', kernel: 'k', memoryMiB: 96, intervalMs: 500, recordedAt: 'now', qemu: 'q' };
  const path = join(dir, 'sample.trace');
  writeFileSync(path, encodeTrace({ pageSize: 4096, pageCount: 16, meta, snapshots: [{ index: 0, tMs: 0, ...s0 }, { index: 1, tMs: 500, ...s1 }] }));
  return path;
}

describe('vnet trace', () => {
  it('stats prints the figures of a trace, as text and as JSON', async () => {
    const path = writeSample();
    const text = await trace('stats', path);
    assert.equal(text.exitCode, 0);
    assert.match(text.out, /workload cli: 16 pages/);
    assert.match(text.out, /zero pages 75\.0%/);
    assert.match(text.out, /dirty rate 4 pages\/s/);
    const json = await trace('stats', path, '--json');
    const st = JSON.parse(json.out) as { zeroShare: number; duplicateShare: number; dirtyRate: number; delta: { p50: number } };
    assert.equal(st.zeroShare, 0.75);
    // Snapshot 0: pages 0..3 hold one content (3 duplicates of 16); snapshot 1: pairs 0,1 and 2,3 (2 of 16).
    assert.equal(st.duplicateShare, (3 / 16 + 2 / 16) / 2);
    assert.equal(st.dirtyRate, 4);
    assert.equal(st.delta.p50, 48);
  });

  it('stats of a file that is not a trace names the error code and exits 1', async () => {
    const bad = join(dir, 'bad.trace');
    writeFileSync(bad, 'nope');
    const r = await trace('stats', bad);
    assert.equal(r.exitCode, 1);
    assert.match(r.err, /VNET_ERR_TRACE_MAGIC/);
  });

  it('record refuses an unknown workload and a guest below the memory floor before starting anything', async () => {
    await assert.rejects(trace('record', '--workload', 'bitcoin', '--out', join(dir, 'x.trace')), /invalid/i);
    await assert.rejects(trace('record', '--workload', 'idle', '--out', join(dir, 'x.trace'), '--memory', '64'), /integer in \[96/);
  });
});
