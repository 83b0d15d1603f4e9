import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TrafficEntry } from '../../src/control/daemon-control.ts';
import { TrafficCounters } from '../../src/dataplane/traffic-counters.ts';

const A = 0x0200_0000_000a;
const B = 0x0200_0000_000b;
const C = 0x0200_0000_000c;

function sorted(entries: TrafficEntry[]): TrafficEntry[] {
  return [...entries].sort((x, y) => x.src - y.src || x.dst - y.dst);
}

describe('TrafficCounters', () => {
  it('sums frames and bytes per (src, dst) pair, direction included', () => {
    const c = new TrafficCounters({ startMs: 1000 });
    c.add(A, B, 100);
    c.add(A, B, 200);
    c.add(B, A, 60);
    c.add(A, C, 1500);
    c.add(A, B, 50);
    c.add(A, C, 9000, 6); // a batch of six frames
    const s = c.snapshotAndReset(2000);
    assert.deepEqual(sorted(s.entries), [
      { src: A, dst: B, frames: 3, bytes: 350 },
      { src: A, dst: C, frames: 7, bytes: 10_500 },
      { src: B, dst: A, frames: 1, bytes: 60 },
    ]);
    assert.equal(s.untrackedFrames, 0);
  });

  it('snapshotAndReset returns counts since the previous call, with back-to-back intervals', () => {
    const c = new TrafficCounters({ startMs: 1000 });
    c.add(A, B, 100);
    const s1 = c.snapshotAndReset(2000);
    assert.equal(s1.startMs, 1000);
    assert.equal(s1.endMs, 2000);
    assert.deepEqual(s1.entries, [{ src: A, dst: B, frames: 1, bytes: 100 }]);

    const s2 = c.snapshotAndReset(3000);
    assert.equal(s2.startMs, 2000);
    assert.equal(s2.endMs, 3000);
    assert.deepEqual(s2.entries, [], 'nothing counted twice; idle pairs are not reported');

    c.add(A, B, 40); // after the idle interval the pair's cell was freed: counting starts afresh
    c.add(B, C, 10);
    const s3 = c.snapshotAndReset(4500);
    assert.equal(s3.startMs, 3000);
    assert.deepEqual(sorted(s3.entries), [
      { src: A, dst: B, frames: 1, bytes: 40 },
      { src: B, dst: C, frames: 1, bytes: 10 },
    ]);
  });

  it('keeps cells of active pairs across snapshots and frees those idle for a whole interval', () => {
    const c = new TrafficCounters({ startMs: 0 });
    c.add(A, B, 1);
    c.add(A, C, 1);
    c.snapshotAndReset(1);
    assert.equal(c.pairs, 2, 'zeroed, kept');
    c.add(A, B, 1);
    c.snapshotAndReset(2);
    assert.equal(c.pairs, 1, 'A→C was idle for the whole interval: freed');
    c.add(A, B, 1);
    assert.equal(c.snapshotAndReset(3).entries.length, 1);
    assert.equal(c.pairs, 1);
    c.snapshotAndReset(4);
    assert.equal(c.pairs, 0, 'A→B idle for an interval: freed');
  });

  it('the last-pair fast path stays correct when pairs alternate and across a reset', () => {
    const c = new TrafficCounters({ startMs: 0 });
    for (let i = 0; i < 10; i++) {
      c.add(A, B, 1);
      c.add(A, B, 1);
      c.add(B, A, 2);
    }
    const s = c.snapshotAndReset(1);
    assert.deepEqual(sorted(s.entries), [
      { src: A, dst: B, frames: 20, bytes: 20 },
      { src: B, dst: A, frames: 10, bytes: 20 },
    ]);
    c.add(B, A, 2); // same pair as the last add before the reset
    c.snapshotAndReset(2);
    c.snapshotAndReset(3); // B→A freed here
    c.add(B, A, 5); // must not land in the freed cell
    assert.deepEqual(c.snapshotAndReset(4).entries, [{ src: B, dst: A, frames: 1, bytes: 5 }]);
  });

  it('peek gives totals since start, the current interval included, and resets nothing', () => {
    const c = new TrafficCounters({ startMs: 500 });
    c.add(A, B, 100);
    c.snapshotAndReset(1000);
    c.add(A, B, 50);
    c.add(B, C, 7);
    const p = c.peek();
    assert.equal(p.sinceMs, 500);
    assert.deepEqual(sorted(p.entries), [
      { src: A, dst: B, frames: 2, bytes: 150 },
      { src: B, dst: C, frames: 1, bytes: 7 },
    ]);
    assert.deepEqual(sorted(c.snapshotAndReset(2000).entries), [
      { src: A, dst: B, frames: 1, bytes: 50 },
      { src: B, dst: C, frames: 1, bytes: 7 },
    ], 'peek did not consume the interval');
    assert.deepEqual(sorted(c.peek().entries), sorted(p.entries));
  });

  it('bounds the number of pairs; traffic beyond is counted as untracked', () => {
    const c = new TrafficCounters({ startMs: 0, maxPairs: 2 });
    c.add(A, B, 10);
    c.add(A, C, 20);
    c.add(B, C, 30); // third pair: untracked
    c.add(B, C, 30);
    c.add(A, B, 10); // existing pairs still counted
    const s = c.snapshotAndReset(1);
    assert.deepEqual(sorted(s.entries), [
      { src: A, dst: B, frames: 2, bytes: 20 },
      { src: A, dst: C, frames: 1, bytes: 20 },
    ]);
    assert.equal(s.untrackedFrames, 2);
    assert.equal(s.untrackedBytes, 60);
    assert.equal(c.peek().untrackedFrames, 2);
    assert.equal(c.snapshotAndReset(2).untrackedFrames, 0, 'untracked counts reset too');
    assert.throws(() => new TrafficCounters({ startMs: 0, maxPairs: 0 }), RangeError);
  });

  it('counts 48-bit MACs exactly (no key collisions between high and low bits)', () => {
    const c = new TrafficCounters({ startMs: 0 });
    const hi = 0xfeff_ffff_fff0;
    c.add(hi, 1, 1);
    c.add(1, hi, 2);
    c.add(hi + 1, 1, 3);
    assert.deepEqual(sorted(c.snapshotAndReset(1).entries), [
      { src: 1, dst: hi, frames: 1, bytes: 2 },
      { src: hi, dst: 1, frames: 1, bytes: 1 },
      { src: hi + 1, dst: 1, frames: 1, bytes: 3 },
    ]);
  });
});
