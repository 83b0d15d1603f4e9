import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { runVirtualMigration, runVirtualMigrations } from '../../../src/migration/drivers/virtual-time.ts';
import { XenStop } from '../../../src/migration/stop-rules/xen-stop.ts';
import { QemuStop } from '../../../src/migration/stop-rules/qemu-stop.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';
import { PROFILE_NAMES, SCENARIOS, scaledProfile, type ProfileName } from '../../../src/migration/guests/workload-profiles.ts';
import { createContentKeyer, diskDigest, memoryDigest } from '../../../src/migration/engine/content-key.ts';
import type { StopRule } from '../../../src/migration/stop-rules/stop-rule.ts';
import type { ContentRepresentation } from '../../../src/migration/guest.ts';
import type { ModelGuestInit } from '../../../src/migration/guests/memory-guest.ts';
import { recordSize } from '../../../src/migration/engine/stream-record-codec.ts';
import { OneWriteGuest, assertSameAsReplay } from '../guests/sync-guests.ts';

const PAGES = 2048;
const BLOCKS = 512;

function setup(name: ProfileName, rep: ContentRepresentation = 'synthetic', seed = 5): { guest: ModelGuest; bandwidthBps: number } {
  const { profile, factor } = scaledProfile(name, PAGES);
  const scenario = name === 'npb-mg' ? SCENARIOS.tlm : SCENARIOS.cloudnet;
  const guest = new ModelGuest({ name: `vm-${name}`, pageCount: PAGES, blockCount: BLOCKS, representation: rep, memoryWorkload: profile.memory, diskWorkload: profile.disk, seed });
  return { guest, bandwidthBps: (scenario.bandwidthBps / scenario.vms) * factor };
}

function rules(bandwidthBps: number): StopRule[] {
  const ramMs = (PAGES * 4096 * 8 * 1000) / bandwidthBps;
  return [new XenStop(), new QemuStop(), new SmartStop(), new TimeBound({ deadlineMs: 3 * ramMs, downtimeTargetMs: ramMs / 50 })];
}

test('every stop rule on every profile ends with the destination bit-identical to the source at pause', async () => {
  const keyer = await createContentKeyer();
  for (const name of PROFILE_NAMES) {
    for (let i = 0; i < 4; i++) {
      const { guest, bandwidthBps } = setup(name);
      const rule = rules(bandwidthBps)[i] as StopRule;
      const r = await runVirtualMigration({ guest, rule }, { link: { bandwidthBps, rttMs: 27 }, batchBytes: 16 * 1024 });
      assert.equal(r.ok, true, `${name}/${rule.name}: ${r.error?.message}`);
      const dest = r.destination;
      assert.ok(dest !== undefined);
      assert.equal(guest.runState, 'paused', 'the source stays paused, to be released');
      assert.equal(dest.runState, 'running');
      assert.equal(memoryDigest(dest.memory, keyer), memoryDigest(guest.memory, keyer), `${name}/${rule.name} memory`);
      assert.equal(diskDigest(dest.disk, keyer), diskDigest(guest.disk, keyer), `${name}/${rule.name} disk`);
      assert.deepEqual(dest.readDeviceState(), guest.readDeviceState());
      assert.ok(r.downtimeMs > 0 && r.downtimeMs <= r.totalMs);
    }
  }
});

test('real bytes and the synthetic size model give the same migration, record for record', async () => {
  for (const rule of ['smart-stop', 'time-bound'] as const) {
    const out = [];
    for (const rep of ['bytes', 'synthetic'] as const) {
      const { guest, bandwidthBps } = setup('tpc-w', rep);
      const r = await runVirtualMigration({ guest, rule: rules(bandwidthBps)[rule === 'smart-stop' ? 2 : 3] as StopRule }, { link: { bandwidthBps, rttMs: 27 } });
      assert.ok(r.ok);
      out.push({ bytes: r.bytes, it: r.iterations, rec: r.sender.records, total: r.totalMs, down: r.downtimeMs });
    }
    assert.deepEqual(out[0], out[1], rule);
  }
});

test('optimized rules send fewer bytes than the xen baseline on a redundant profile', async () => {
  const a = setup('tpc-w');
  const xen = await runVirtualMigration({ guest: a.guest, rule: new XenStop(), disk: false }, { link: { bandwidthBps: a.bandwidthBps, rttMs: 27 } });
  const b = setup('tpc-w');
  const smart = await runVirtualMigration({ guest: b.guest, rule: new SmartStop(), disk: false }, { link: { bandwidthBps: b.bandwidthBps, rttMs: 27 } });
  assert.ok(smart.bytes.memory < xen.bytes.memory * 0.8, `${smart.bytes.memory} vs ${xen.bytes.memory}`);
  assert.ok(smart.sender.records.zero > 0 && smart.sender.records.ref > 0 && smart.sender.records.delta > 0);
});

test('a link cut mid-migration aborts, and the source runs on untouched', async () => {
  const keyer = await createContentKeyer();
  const { guest, bandwidthBps } = setup('kernel-compile');
  const twin = setup('kernel-compile').guest;
  const r = await runVirtualMigration({ guest, rule: new SmartStop() }, { link: { bandwidthBps, rttMs: 27, cutAtMs: 20_000 } });
  assert.equal(r.ok, false);
  assert.equal(r.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
  assert.match(r.error?.message ?? '', /\(link\)/);
  assert.equal(guest.runState, 'running');
  assert.equal(guest.throttle, 1);
  // the same workload without a migration reaches the same state
  guest.advance(60_000);
  twin.advance(60_000);
  assert.equal(memoryDigest(guest.memory, keyer), memoryDigest(twin.memory, keyer));
  assert.equal(diskDigest(guest.disk, keyer), diskDigest(twin.disk, keyer));
  // dirty logging is off again
  assert.equal(guest.memory.dirtyCount(), 0);
});

test('an aborted time-bound migration gives the guest its CPU back', async () => {
  const { guest, bandwidthBps } = setup('npb-mg');
  const ramMs = (PAGES * 4096 * 8 * 1000) / bandwidthBps;
  const r = await runVirtualMigration({ guest, rule: new TimeBound({ deadlineMs: 3 * ramMs }), disk: false }, { link: { bandwidthBps, rttMs: 1, cutAtMs: ramMs * 0.9 } });
  assert.equal(r.ok, false);
  assert.equal(guest.runState, 'running');
  assert.equal(guest.throttle, 1);
  assert.ok(r.sender.minThrottle < 1, 'it had been throttled');
});

test('a migration that cannot end in time is aborted as a timeout', async () => {
  const { guest, bandwidthBps } = setup('idle');
  const r = await runVirtualMigration({ guest, rule: new XenStop(), timeoutMs: 1000 }, { link: { bandwidthBps, rttMs: 27 } });
  assert.equal(r.ok, false);
  assert.match(r.error?.message ?? '', /\(timeout\)/);
  assert.equal(guest.runState, 'running');
});

test('two migrations sharing a link each take about twice as long as one alone', async () => {
  const bw = 50e6;
  const one = await runVirtualMigration({ guest: setup('idle').guest, rule: new XenStop(), disk: false }, { link: { bandwidthBps: bw, rttMs: 10 } });
  const two = await runVirtualMigrations([
    { guest: setup('idle', 'synthetic', 1).guest, rule: new XenStop(), disk: false },
    { guest: setup('idle', 'synthetic', 2).guest, rule: new XenStop(), disk: false },
  ], { link: { bandwidthBps: bw, rttMs: 10 } });
  for (const r of two) {
    assert.ok(r.ok);
    assert.ok(r.totalMs > one.totalMs * 1.7 && r.totalMs < one.totalMs * 2.3, `${r.totalMs} vs ${one.totalMs}`);
  }
});

// ---- synchronous disk replication ------------------------------------------

test('a synchronous write completes exactly one RTT plus transmission after its record is sent, not before', async () => {
  const keyer = await createContentKeyer();
  const bandwidthBps = 100e6;
  const rttMs = 20;
  // No workload: 4096 pages take ~1.35 s to send, the disk (64 blocks) ~21 ms; one write at 500 ms.
  const g = new OneWriteGuest({ name: 'one', pageCount: 4096, blockCount: 64, representation: 'synthetic', seed: 3 }, 500, 5, { base: 77, ver: 0 });
  const r = await runVirtualMigration({ guest: g, rule: new XenStop() }, { link: { bandwidthBps, rttMs } });
  assert.equal(r.ok, true, r.error?.message);
  assert.ok(g.issuedAt !== undefined && g.issuedAt >= 500 && g.issuedAt < 530, `issued at ${g.issuedAt} (the first sender step after 500 ms)`);
  const rate = bandwidthBps / 8 / 1000;
  const block = recordSize({ t: 'full', seq: 1, space: 'disk', index: 5, content: { base: 77, ver: 0 } });
  const ack = recordSize({ t: 'disk-ack', seq: 1 });
  // The guest issued it at a sender step, on an idle link: sent at once, ahead of memory.
  const want = g.issuedAt + block / rate + rttMs + ack / rate;
  assert.equal(g.completions.length, 1, 'completed once, by the ack');
  assert.ok(Math.abs((g.completions[0] ?? 0) - want) < 1e-9, `completed at ${g.completions[0]}, expected ${want}`);
  const ds = r.sender.diskSync;
  assert.ok(ds !== undefined);
  assert.equal(ds.writes, 1);
  assert.equal(ds.acked, 1);
  assert.ok(Math.abs(ds.latency.meanMs - (want - g.issuedAt)) < 1e-9);
  assert.deepEqual(r.destination?.disk?.readBlock(5), { base: 77, ver: 0 });
  assert.equal(diskDigest(r.destination?.disk, keyer), diskDigest(g.disk, keyer));
});

const HEAVY_MEM = { dirtyRate: 400, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.2, dupShare: 0.1, bytesPerWrite: 200, rewriteShare: 0.2 };

function heavy(depth: number, seed = 12): { init: ModelGuestInit; guest: ModelGuest } {
  const init: ModelGuestInit = { name: 'heavy', pageCount: 4096, blockCount: 1024, representation: 'synthetic', memoryWorkload: HEAVY_MEM, diskWorkload: { writeRate: 1000, wssShare: 0.2, zeroShare: 0.3, ioCoupling: 0.5 }, diskQueueDepth: depth, seed };
  return { init, guest: new ModelGuest(init) };
}

test('the queue depth bounds the write rate at depth/RTT and stalls the workload; asynchronous replication does not', async () => {
  const keyer = await createContentKeyer();
  const link = { bandwidthBps: 100e6, rttMs: 50 };
  const { guest: s } = heavy(8);
  const sync = await runVirtualMigration({ guest: s, rule: new SmartStop() }, { link, batchBytes: 16 * 1024 });
  const { guest: a } = heavy(8);
  const async = await runVirtualMigration({ guest: a, rule: new SmartStop(), diskReplication: 'asynchronous' }, { link, batchBytes: 16 * 1024 });
  for (const [r, g] of [[sync, s], [async, a]] as const) {
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(diskDigest(r.destination?.disk, keyer), diskDigest(g.disk, keyer));
    assert.equal(memoryDigest(r.destination!.memory, keyer), memoryDigest(g.memory, keyer));
  }
  const rate = (r: typeof sync): number => ((r.sender.diskSync?.writes ?? 0) * 1000) / ((r.sender.pausedAt ?? 0) - (r.sender.diskSync?.syncStartedAt ?? 0));
  // 8 outstanding writes per round trip of >= 50 ms: at most 160 writes/s
  assert.ok(rate(sync) <= 160 * 1.02, `sync ${rate(sync)} writes/s`);
  assert.ok(rate(sync) > 100, `sync ${rate(sync)} writes/s`);
  assert.ok(rate(async) > 950, `async ${rate(async)} writes/s`);
  const ds = sync.sender.diskSync!;
  assert.equal(ds.maxPending, 8);
  assert.ok(ds.refusals > 0);
  assert.ok(ds.latency.meanMs >= 50 && ds.latency.p99Ms >= ds.latency.meanMs);
  assert.ok(s.diskStallMs > 0 && a.diskStallMs === 0);
  // coupling 0.5: the stalled guest made fewer memory writes per second of running
  assert.ok(s.memoryWrites / s.ranMs < a.memoryWrites / a.ranMs);
  assert.equal(async.sender.diskSync?.latency.maxMs, 0);
});

test('a destination that stops acknowledging stalls the writes; the migration times out and the source runs on with every write', async () => {
  const { init, guest } = heavy(8, 13);
  // replication begins at ~340 ms (1024 blocks at 100 Mbit/s); the memory phase would end at ~1.3 s
  const r = await runVirtualMigration({ guest, rule: new SmartStop(), diskAckTimeoutMs: 500 }, { link: { bandwidthBps: 100e6, rttMs: 10, replyCutAtMs: 400 } });
  assert.equal(r.ok, false);
  assert.equal(r.sender.pausedAt, undefined, 'aborted during the memory phase');
  assert.ok((r.sender.diskSync?.syncStartedAt ?? 1e9) < 400);
  assert.match(r.error?.message ?? '', /\(timeout\).*disk acknowledgement/);
  assert.equal(guest.runState, 'running');
  assert.equal(guest.throttle, 1);
  assert.equal(guest.diskStalled, false, 'the waiting write was issued locally');
  const ds = r.sender.diskSync!;
  assert.ok(ds.completedLocally > 0, 'pending writes completed locally');
  assert.equal(ds.acked + ds.completedLocally, ds.writes, 'every admitted write completed');
  assert.ok(guest.diskStallMs > 400, `stalled ${guest.diskStallMs} ms`);
  assertSameAsReplay(guest, init);
  // and it runs on unhindered
  guest.advance(5000);
  const w = guest.diskWrites;
  guest.advance(6000);
  assert.ok(guest.diskWrites - w >= 990, `${guest.diskWrites - w} writes in the next second`);
  assertSameAsReplay(guest, init);
});

test('a link cut during synchronous replication: pending writes complete locally, the source keeps its disk whole', async () => {
  const { init, guest } = heavy(32, 14);
  const r = await runVirtualMigration({ guest, rule: new SmartStop() }, { link: { bandwidthBps: 100e6, rttMs: 50, cutAtMs: 800 } });
  assert.equal(r.ok, false);
  assert.match(r.error?.message ?? '', /\(link\)/);
  const ds = r.sender.diskSync!;
  assert.ok(ds.syncStartedAt !== undefined && ds.syncStartedAt < 800, 'the cut came during replication');
  assert.ok(ds.completedLocally > 0);
  assert.equal(ds.acked + ds.completedLocally, ds.writes);
  assert.equal(guest.runState, 'running');
  assert.equal(guest.diskStalled, false);
  assertSameAsReplay(guest, init);
});

test('every stop rule on the write-heavy profile, stalled by synchronous replication at 27 ms, ends bit-identical', async () => {
  const keyer = await createContentKeyer();
  const { profile, factor } = scaledProfile('oltp', PAGES);
  const bandwidthBps = (SCENARIOS.cloudnet.bandwidthBps / SCENARIOS.cloudnet.vms) * factor * 8;
  for (const rule of rules(bandwidthBps)) {
    // the disk at its full (unscaled) write rate: 1,500 writes/s against 32 per 27 ms
    const guest = new ModelGuest({ name: 'oltp', pageCount: PAGES, blockCount: BLOCKS, representation: 'synthetic', memoryWorkload: profile.memory, diskWorkload: { ...profile.disk, writeRate: 1500 }, seed: 6 });
    const r = await runVirtualMigration({ guest, rule }, { link: { bandwidthBps, rttMs: 27 }, batchBytes: 16 * 1024 });
    assert.equal(r.ok, true, `${rule.name}: ${r.error?.message}`);
    assert.ok((r.sender.diskSync?.refusals ?? 0) > 0, `${rule.name}: the queue filled`);
    assert.equal(memoryDigest(r.destination!.memory, keyer), memoryDigest(guest.memory, keyer), `${rule.name} memory`);
    assert.equal(diskDigest(r.destination?.disk, keyer), diskDigest(guest.disk, keyer), `${rule.name} disk`);
  }
});
