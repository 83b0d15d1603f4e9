import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DualChannelPlan } from '../../../src/migration/engine/dual-channel.ts';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { Rng } from '../../../src/migration/guests/workload.ts';

test('whatever the guest writes while the two channels run, rest() names every page the destination lacks', () => {
  const rng = new Rng(99);
  for (let trial = 0; trial < 20; trial++) {
    const g = new ModelGuest({ name: 'm', pageCount: 300, representation: 'synthetic' });
    const mem = g.memory;
    mem.setDirtyLogging(true);
    const plan = new DualChannelPlan(mem);
    const sentVer = new Map<number, number>(); // page -> version the destination holds
    const cur = new Uint32Array(300); // page -> current version
    const steps = 200 + rng.below(600);
    let sends = 0;
    for (let i = 0; i < steps; i++) {
      if (rng.next() < 0.4) {
        const p = rng.below(300);
        cur[p] = (cur[p] ?? 0) + 1;
        mem.writePage(p, { base: 1, ver: cur[p] ?? 0 });
      }
      const s = plan.next();
      if (s.kind === 'send') { sentVer.set(s.page, cur[s.page] ?? 0); plan.account(s.ch, 100); sends++; }
    }
    const rest = new Set(plan.rest());
    for (let p = 0; p < 300; p++) {
      const stale = sentVer.get(p) !== cur[p];
      if (stale) assert.ok(rest.has(p), `trial ${trial}: page ${p} stale at the destination but not owed`);
    }
    assert.ok(sends > 0);
  }
});

test('mtx skips pages that are dirty; dtx only re-sends pages behind mtx', () => {
  const g = new ModelGuest({ name: 'm', pageCount: 10, representation: 'synthetic' });
  g.memory.setDirtyLogging(true);
  const plan = new DualChannelPlan(g.memory);
  g.memory.writePage(0, { base: 2, ver: 0 }); // dirty before mtx reaches it
  g.memory.writePage(8, { base: 2, ver: 0 }); // dirty, ahead of mtx
  const first = plan.next();
  // dtx took the log first: page 0 and 8 are both ahead of mtx's cursor (0), so dtx keeps none;
  // mtx then sends page 0 with its latest content
  assert.deepEqual(first, { kind: 'send', page: 0, ch: 0 });
  g.memory.writePage(0, { base: 3, ver: 0 }); // re-dirtied behind mtx
  const seen: string[] = [];
  for (let i = 0; i < 12; i++) {
    const s = plan.next();
    if (s.kind === 'send') seen.push(`${s.ch}:${s.page}`);
  }
  assert.ok(seen.includes('1:0'), `dtx re-sends page 0: ${seen.join(' ')}`);
  assert.ok(seen.includes('0:8'), `mtx sends page 8: ${seen.join(' ')}`);
  assert.equal(plan.mtxDone, true);
});
