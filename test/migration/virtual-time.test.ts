import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelGuest } from '../../src/migration/memory-guest.ts';
import { runVirtualMigration, runVirtualMigrations } from '../../src/migration/virtual-time.ts';
import { XenStop } from '../../src/migration/xen-stop.ts';
import { QemuStop } from '../../src/migration/qemu-stop.ts';
import { SmartStop } from '../../src/migration/smart-stop.ts';
import { TimeBound } from '../../src/migration/time-bound.ts';
import { PROFILE_NAMES, SCENARIOS, scaledProfile, type ProfileName } from '../../src/migration/workload-profiles.ts';
import { createContentKeyer, diskDigest, memoryDigest } from '../../src/migration/content-key.ts';
import type { StopRule } from '../../src/migration/stop-rule.ts';
import type { ContentRepresentation } from '../../src/migration/guest.ts';

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
