/**
 * bench/cutover/qemu-pingpong — does a real guest under QEMU go quiet after
 * a live migration with no vnet in the path? (root; issue 10's "migrated
 * QEMU guest sometimes goes quiet".) One booted guest (TCG, 128 MiB, e1000,
 * the image of scripts/guest-build.sh) is migrated back and forth between
 * two QEMU processes on one kernel bridge, `--moves N` times (default 20),
 * while a namespace pings it every 10 ms:
 *
 *   ns qp: br0 ── tap qt0 ── QEMU (A)  ⇄ migrate (Unix socket) ⇄  QEMU (B) ── tap qt1 ── br0
 *          br0 ── veth ── ns qpp (10.253.0.20, pings the guest 10.253.0.10)
 *
 * Each move: a QEMU started with `-incoming` on the other TAP device, plain
 * `migrate` (the destination runs as soon as it is loaded; QEMU's RARP
 * tells the bridge), the source quit. Per move: the guest's downtime (the
 * source's STOP to the destination's RESUME, QEMU's timestamps), the time
 * from the RESUME to the first ping reply, and the longest gap between
 * replies from the STOP until the next move. `--stream` also bounces a
 * checked TCP stream off the guest's echo service (the cutover benchmark's
 * load), one per guest. `--watch MS` sets how long each move is watched. `--fresh` boots a new guest for every move and
 * migrates it 1.5 s after it answers, as the cutover benchmark and the
 * privileged test do (each observed 5 s after its move, then stopped). A
 * move after which the guest stays quiet (a
 * gap over a second) prints the destination's
 * console tail (the guest kernel's warnings: loglevel=5) and its QMP
 * status. `--stop-cont MS` does not migrate: each "move" stops the guest
 * (QMP `stop`) for MS and runs it again (`cont`) in the same QEMU, warm, on
 * the same TAP device, so nothing moves on the bridge either: the guest's
 * own time to answer a ping that waited for it, without a migration. Every
 * name lives in namespaces this program creates and removes.
 *
 * Usage (root): node --import tsx bench/cutover/qemu-pingpong.ts [--moves N] [--device e1000|virtio-net-pci] [--stream] [--fresh] [--watch MS] [--stop-cont MS]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { qemuVmArgs } from '../../src/host/qemu-vm.ts';
import { connectWithRetry, ensureGuestImage } from '../../src/migration/qemu/qemu-guest-recorder.ts';
import { QemuProcess } from '../../src/migration/qemu/qemu-process.ts';
import type { QmpClient } from '../../src/migration/qemu/qmp-client.ts';
import { startEchoStream, startPing, type StreamFigures } from './probes.ts';

const arg = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const moves = Number(arg('--moves') ?? 20);
if (!Number.isInteger(moves) || moves < 1 || moves > 200) throw new Error(`--moves: a whole number 1..200, not ${arg('--moves')}`);
const device = arg('--device') ?? 'e1000';
if (device !== 'e1000' && device !== 'virtio-net-pci') throw new Error(`--device: e1000 or virtio-net-pci, not ${device}`);

const tag = Math.random().toString(36).slice(2, 6);
const NS = `qp-${tag}`;
const PINGER = `qpp-${tag}`;
const GUEST_IP = '10.253.0.10';
const MAC = 0x02_00_00_0d_00_10;
const QUIET_MS = 1000;
const stopContMs = arg('--stop-cont') === undefined ? undefined : Number(arg('--stop-cont'));
if (stopContMs !== undefined && !(stopContMs >= 0 && stopContMs <= 10_000)) throw new Error(`--stop-cont: ms 0..10000, not ${arg('--stop-cont')}`);

function sh(cmd: string[]): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

const dir = mkdtempSync(join(tmpdir(), 'vnet-qemu-pingpong-'));
const log = silentLogger();
const running: Array<{ proc: QemuProcess; qmp: QmpClient | undefined }> = [];
interface Move { downtimeMs: number; firstReplyMs: number; maxGapMs: number; quiet: boolean }
const streamFigures: StreamFigures[] = [];
const rows: Move[] = [];
try {
  for (const n of [NS, PINGER]) { sh(['ip', 'netns', 'add', n]); sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']); }
  sh(['ip', '-n', NS, 'link', 'add', 'br0', 'type', 'bridge']);
  sh(['ip', '-n', NS, 'link', 'set', 'br0', 'up']);
  sh(['ip', '-n', NS, 'link', 'add', 'pv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', PINGER]);
  sh(['ip', '-n', NS, 'link', 'set', 'pv', 'master', 'br0', 'up']);
  sh(['ip', '-n', PINGER, 'addr', 'add', '10.253.0.20/24', 'dev', 'eth0']);
  sh(['ip', '-n', PINGER, 'link', 'set', 'eth0', 'up']);

  const image = await ensureGuestImage();
  const spec = { name: 'pingpong', mac: MAC, socketPath: '', memoryMiB: 128, ip: `${GUEST_IP}/24`, image };
  const start = async (k: number, incoming: string | false): Promise<{ proc: QemuProcess; qmp: QmpClient }> => {
    const tap = `qt${k % 2}`;
    const args = qemuVmArgs(spec, join(dir, `q${k}.qmp`), incoming, `tap,id=n0,ifname=${tap},script=no,downscript=no`)
      .map((a) => (a.startsWith('e1000,') ? a.replace('e1000,', `${device},`) : a));
    const proc = new QemuProcess('ip', ['netns', 'exec', NS, 'qemu-system-x86_64', ...args], log);
    const entry: { proc: QemuProcess; qmp: QmpClient | undefined } = { proc, qmp: undefined };
    running.push(entry);
    proc.start();
    entry.qmp = await connectWithRetry(join(dir, `q${k}.qmp`), proc, realClock, realClock.now() + 120_000, log, undefined);
    sh(['ip', '-n', NS, 'link', 'set', tap, 'master', 'br0', 'up']);
    await entry.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    return { proc, qmp: entry.qmp };
  };
  const fresh = process.argv.includes('--fresh');
  let instance = 0;
  const boot = async (): Promise<{ proc: QemuProcess; qmp: QmpClient }> => {
    const vm = await start(instance++, false);
    await vm.proc.waitForConsole('VNET_NET_READY', 240_000, 240_000);
    for (let i = 0; i < 120 && spawnSync('ip', ['netns', 'exec', PINGER, 'ping', '-c', '1', '-W', '1', GUEST_IP]).status !== 0; i++);
    return vm;
  };
  let src = await boot();
  const ping = startPing(PINGER, GUEST_IP, 1_000_000);
  const withStream = process.argv.includes('--stream');
  let stream = withStream ? startEchoStream(PINGER, GUEST_IP, 7) : undefined;
  const marks: Array<{ stoppedAt: number; resumedAt: number; endAt: number; console: string; samples: string[] }> = [];
  const watchMs = Number(arg('--watch') ?? (fresh ? 5000 : 3000));
  for (let k = 1; stopContMs !== undefined && k <= moves; k++) {
    const stopped = src.qmp.waitForEvent('STOP', { timeoutMs: 30_000 });
    const resumed = src.qmp.waitForEvent('RESUME', { timeoutMs: 30_000 });
    await src.qmp.execute('stop');
    const stop = await stopped;
    await new Promise((r) => setTimeout(r, stopContMs));
    await src.qmp.execute('cont');
    const resume = await resumed;
    await new Promise((r) => setTimeout(r, watchMs));
    marks.push({ stoppedAt: stop.timestamp * 1000, resumedAt: resume.timestamp * 1000, endAt: Date.now(), console: src.proc.outputTail(), samples: [] });
  }
  for (let k = 1; stopContMs === undefined && k <= moves; k++) {
    if (fresh && k > 1) {
      if (stream !== undefined) streamFigures.push(await stream.stop());
      await src.proc.stop(src.qmp);
      await src.qmp.close().catch(() => undefined);
      src = await boot();
      if (withStream) stream = startEchoStream(PINGER, GUEST_IP, 7);
      await new Promise((r) => setTimeout(r, 1500));
    }
    const uri = `unix:${join(dir, `mig${k}.sock`)}`;
    const dst = await start(instance++, uri);
    await src.qmp.execute('migrate-set-parameters', { 'downtime-limit': 300, 'max-bandwidth': 10 * 1024 ** 3 });
    const stopped = src.qmp.waitForEvent('STOP', { timeoutMs: 300_000 });
    const resumed = dst.qmp.waitForEvent('RESUME', { timeoutMs: 300_000 });
    await src.qmp.execute('migrate', { uri });
    const [stop, resume] = await Promise.all([stopped, resumed]);
    await src.proc.stop(src.qmp);
    await src.qmp.close().catch(() => undefined);
    // Watch the guest in its new QEMU (--watch ms) before the next move: what its TAP device carries each 500 ms
    // (rx: frames the guest sent, tx: frames handed to it) and the pinger's neighbour entry for it.
    const samples: string[] = [];
    const tap = `qt${(instance - 1) % 2}`;
    for (let t = 0; t < watchMs; t += 500) {
      const stats = /RX:.*\n\s*(\d+)\s+(\d+).*\n.*TX:.*\n\s*(\d+)\s+(\d+)/.exec(sh(['ip', '-n', NS, '-s', 'link', 'show', tap]));
      const neigh = sh(['ip', '-n', PINGER, 'neigh', 'show', GUEST_IP]).trim().split(' ').slice(-1)[0];
      samples.push(`+${t}ms rx ${stats?.[2] ?? '?'} tx ${stats?.[4] ?? '?'} ${neigh}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    marks.push({ stoppedAt: stop.timestamp * 1000, resumedAt: resume.timestamp * 1000, endAt: Date.now(), console: dst.proc.outputTail(), samples });
    src = dst;
  }
  await new Promise((r) => setTimeout(r, 2000));
  ping.stop();
  if (stream !== undefined) streamFigures.push(await stream.stop());
  const figures = await ping.done;
  const times = figures.replies.map((r) => r.atMs);
  for (const [i, m] of marks.entries()) {
    const first = figures.replies.find((r) => r.atMs >= m.resumedAt);
    const firstReplyMs = first === undefined ? Number.POSITIVE_INFINITY : first.atMs - m.resumedAt;
    const until = m.endAt;
    let maxGapMs = 0;
    const inside = times.filter((t) => t > m.stoppedAt && t <= until);
    const edges = [m.stoppedAt, ...inside, until];
    for (let k = 1; k < edges.length; k++) maxGapMs = Math.max(maxGapMs, edges[k]! - edges[k - 1]!);
    const quiet = firstReplyMs > QUIET_MS || maxGapMs - (m.resumedAt - m.stoppedAt) > QUIET_MS;
    rows.push({ downtimeMs: m.resumedAt - m.stoppedAt, firstReplyMs, maxGapMs, quiet });
    if (quiet) {
      const last = inside.length > 0 ? inside[inside.length - 1]! - m.resumedAt : Number.NaN;
      console.log(`move ${i + 1}: QUIET: first reply ${firstReplyMs.toFixed(0)} ms after its RESUME, last ${last.toFixed(0)} ms, ${inside.length} replies in ${(until - m.resumedAt).toFixed(0)} ms; longest gap ${maxGapMs.toFixed(0)} ms`);
      console.log(`  its TAP and the pinger's neighbour entry: ${m.samples.join(' | ')}`);
      console.log(`  destination console tail:\n${m.console.slice(-3000)}`);
    }
  }
} finally {
  for (const { proc, qmp } of running) {
    await proc.stop(qmp).catch(() => undefined);
    await qmp?.close().catch(() => undefined);
  }
  for (const n of [NS, PINGER]) spawnSync('ip', ['netns', 'del', n]);
  rmSync(dir, { recursive: true, force: true });
}
console.log(`device ${device}${stopContMs === undefined ? '' : `; stop/cont in one QEMU (${stopContMs} ms), no migration`}; TCP streams: ${streamFigures.length === 0 ? 'not run' : streamFigures.map((f) => (f.intact ? `intact (${(f.bytes / 1024).toFixed(0)} KiB)` : `BROKEN: ${f.error ?? '?'}`)).join(', ')}`);
console.log(`${'move'.padEnd(5)}${'downtime ms'.padStart(12)}${'first reply ms'.padStart(16)}${'max gap ms'.padStart(12)}`);
for (const [i, r] of rows.entries()) console.log(`${String(i + 1).padEnd(5)}${r.downtimeMs.toFixed(0).padStart(12)}${(Number.isFinite(r.firstReplyMs) ? r.firstReplyMs.toFixed(0) : 'never').padStart(16)}${r.maxGapMs.toFixed(0).padStart(12)}${r.quiet ? '  QUIET' : ''}`);
console.log(`${rows.filter((r) => r.quiet).length} of ${rows.length} moves left the guest quiet for more than ${QUIET_MS} ms`);
process.exit(0);
