/**
 * Real time against virtual time: the same sender and receiver driven over
 * loopback sockets (paced to the emulated link's rate, or through a delay
 * relay) and in virtual time over an emulated link, figures side by side.
 * These comparisons used to be assertions in
 * test/migration/drivers/socket-migration.test.ts; on a loaded machine real
 * time adds scheduling delay, so they are figures to read, not to assert.
 *
 *   node --import tsx bench/migration/real-vs-virtual.ts
 *
 * 1. a small guest (2,048 pages, 128 blocks) at 60 Mbit/s and 0 ms RTT under
 *    Xen, smart stop and the time bound: bytes, total time, iterations
 * 2. a write-heavy guest (queue depth 4) through a 20 ms round trip:
 *    synchronous writes per second (bound: 4 per 20 ms = 200/s) and their
 *    mean issue-to-ack latency
 */
import type { Duplex } from 'node:stream';
import { realClock, type Clock } from '../../src/common/clock.ts';
import { startDelayRelay } from '../../src/common/delay-relay.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ModelGuest, type ModelGuestInit } from '../../src/migration/guests/memory-guest.ts';
import { runVirtualMigration } from '../../src/migration/drivers/virtual-time.ts';
import { receiveMigration, sendMigration } from '../../src/migration/drivers/socket-migration.ts';
import { connectMigration, listenMigration } from '../../src/migration/drivers/socket-channel.ts';
import { SmartStop } from '../../src/migration/stop-rules/smart-stop.ts';
import { TimeBound } from '../../src/migration/stop-rules/time-bound.ts';
import { XenStop } from '../../src/migration/stop-rules/xen-stop.ts';
import type { StopRule } from '../../src/migration/stop-rules/stop-rule.ts';
import type { MigrationResult } from '../../src/migration/engine/migration-result.ts';

const BW = 60e6;
const WL = { dirtyRate: 1500, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.2, dupShare: 0.1, bytesPerWrite: 200, rewriteShare: 0.2 };
const SMALL: ModelGuestInit = { name: 'g', pageCount: 2048, blockCount: 128, representation: 'bytes', memoryWorkload: WL, diskWorkload: { writeRate: 30, wssShare: 0.2, zeroShare: 0.3 }, seed: 9 };
const HEAVY: ModelGuestInit = {
  name: 'heavy', pageCount: 1024, blockCount: 256, representation: 'bytes', seed: 21, diskQueueDepth: 4,
  memoryWorkload: { dirtyRate: 200, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.2, dupShare: 0.1, bytesPerWrite: 200, rewriteShare: 0.2 },
  diskWorkload: { writeRate: 400, wssShare: 0.5, zeroShare: 0.3, ioCoupling: 0.5 },
};

function clockFromNow(): Clock {
  const t0 = realClock.now();
  return { ...realClock, now: () => realClock.now() - t0 };
}

/** One migration over loopback, directly or through a relay adding `oneWayMs` each way. */
async function overSockets(init: ModelGuestInit, rule: StopRule, channels: number, oneWayMs: number): Promise<MigrationResult> {
  const l = await listenMigration();
  const relay = oneWayMs > 0
    ? await startDelayRelay({ logger: silentLogger() }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: l.port }, delayMs: oneWayMs })
    : undefined;
  const acc = l.accept(channels);
  const out: Duplex[] = await connectMigration({ host: '127.0.0.1', port: relay?.port ?? l.port, channels });
  const inn = await acc;
  const clock = clockFromNow();
  try {
    const rp = receiveMigration({ channels: inn, clock, timeoutMs: 60_000 });
    const r = await sendMigration({ guest: new ModelGuest(init), rule, channels: out, clock, paceBps: BW, timeoutMs: 60_000 });
    await rp;
    return r;
  } finally {
    for (const s of [...out, ...inn]) s.destroy();
    await relay?.close();
    await l.close();
  }
}

function writesPerSec(r: MigrationResult): number {
  const ds = r.sender.diskSync;
  return ((ds?.writes ?? 0) * 1000) / ((r.sender.pausedAt ?? 0) - (ds?.syncStartedAt ?? 0));
}

const f = (x: number, w: number, d = 0): string => x.toFixed(d).padStart(w);
const pct = (real: number, virt: number): string => `${f((100 * (real - virt)) / virt, 5, 1)}%`;

console.log('real time over loopback sockets (paced to 60 Mbit/s) against virtual time over an emulated 60 Mbit/s link');
console.log('  rule          bytes real / virtual (diff)          time ms real / virtual (diff)    iterations');
const rules: [string, () => StopRule, number][] = [['xen', () => new XenStop(), 1], ['smart-stop', () => new SmartStop(), 1], ['time-bound', () => new TimeBound({ deadlineMs: 3000 }), 2]];
for (const [name, rule, channels] of rules) {
  const v = await runVirtualMigration({ guest: new ModelGuest(SMALL), rule: rule() }, { link: { bandwidthBps: BW, rttMs: 0 }, batchBytes: 64 * 1024 });
  const r = await overSockets(SMALL, rule(), channels, 0);
  console.log(`  ${name.padEnd(12)}  ${f(r.bytes.total, 9)} / ${f(v.bytes.total, 9)} (${pct(r.bytes.total, v.bytes.total)})    ${f(r.totalMs, 6)} / ${f(v.totalMs, 6)} (${pct(r.totalMs, v.totalMs)})    ${r.iterations} / ${v.iterations}${r.ok && v.ok ? '' : '  (FAILED)'}`);
}

console.log('\nsynchronous disk replication through a 20 ms round trip (relay) against virtual time at 20 ms RTT, queue depth 4');
const v = await runVirtualMigration({ guest: new ModelGuest(HEAVY), rule: new SmartStop() }, { link: { bandwidthBps: BW, rttMs: 20 }, batchBytes: 64 * 1024 });
const r = await overSockets(HEAVY, new SmartStop(), 1, 10);
const rl = r.sender.diskSync?.latency.meanMs ?? 0;
const vl = v.sender.diskSync?.latency.meanMs ?? 0;
console.log(`  writes/s    real ${f(writesPerSec(r), 6, 1)}  virtual ${f(writesPerSec(v), 6, 1)}  (${pct(writesPerSec(r), writesPerSec(v))}; bound 200)`);
console.log(`  latency ms  real ${f(rl, 6, 1)}  virtual ${f(vl, 6, 1)}  (${pct(rl, vl)}; floor 20)${r.ok && v.ok ? '' : '  (FAILED)'}`);
