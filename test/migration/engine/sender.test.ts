import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { MigrationSender } from '../../../src/migration/engine/sender.ts';
import type { OutRecord } from '../../../src/migration/engine/send-ledger.ts';
import { createContentKeyer, memoryDigest, diskDigest } from '../../../src/migration/engine/content-key.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';
import type { StopRule } from '../../../src/migration/stop-rules/stop-rule.ts';

const WL = { dirtyRate: 400, wssShare: 0.3, hotShare: 0.05, locality: 0.7, zeroShare: 0.2, dupShare: 0.15, bytesPerWrite: 200, rewriteShare: 0.2 };

function guest(): ModelGuest {
  return new ModelGuest({ name: 'g', pageCount: 512, blockCount: 32, representation: 'bytes', memoryWorkload: WL, diskWorkload: { writeRate: 10, wssShare: 0.2, zeroShare: 0.3 }, seed: 5 });
}

/**
 * Runs a catch-up sender, answering each mark only `lagMs` after it was
 * produced (the pipe still full), until its done record; returns what it
 * sent and when the guest paused relative to the answers.
 */
async function run(rule: StopRule, lagMs: number): Promise<{ out: OutRecord[]; pausedBeforeAnswer: number; marks: number; g: ModelGuest; sender: MigrationSender }> {
  const g = guest();
  const sender = new MigrationSender({ guest: g, rule, keyer: await createContentKeyer(), now: 0, catchUp: true });
  const out: OutRecord[] = [];
  let now = 0;
  let pending: { seq: number; due: number } | undefined;
  let pausedBeforeAnswer = 0;
  let marks = 0;
  for (let n = 0; n < 200_000 && !sender.awaitingAck; n++) {
    if (pending !== undefined && now >= pending.due) { sender.onApplied(pending.seq, now); pending = undefined; }
    const batch = sender.next(now, 16 * 1024);
    for (const o of batch) {
      out.push(o);
      if (o.rec.t === 'mark') { marks++; pending = { seq: o.rec.seq, due: now + lagMs }; }
      if (o.rec.t === 'pause' && pending !== undefined) pausedBeforeAnswer++;
    }
    now += batch.reduce((a, o) => a + o.size, 0) / 2500 + (batch.length === 0 ? 0.5 : 0);
  }
  assert.ok(sender.awaitingAck, 'the sender reached its done record');
  return { out, pausedBeforeAnswer, marks, g, sender };
}

test('catch-up: before a pre-copy iteration is measured and before the pause, a mark goes out and nothing more is produced until the receiver applied it', async () => {
  for (const rule of [new SmartStop(), new TimeBound({ deadlineMs: 4000 })] as StopRule[]) {
    const { out, pausedBeforeAnswer, marks, sender } = await run(rule, 25);
    assert.ok(marks >= 1, `${rule.name}: at least the mark before the pause`);
    assert.equal(pausedBeforeAnswer, 0, `${rule.name}: the guest paused while a mark was unanswered`);
    const pause = out.findIndex((o) => o.rec.t === 'pause');
    const lastMark = out.map((o) => o.rec.t).lastIndexOf('mark', pause);
    assert.ok(lastMark >= 0 && lastMark < pause, `${rule.name}: a mark precedes the pause`);
    // Between that mark and the pause: no memory page (the pipe was empty of the pre-copy when the guest stopped).
    assert.equal(out.slice(lastMark + 1, pause).filter((o) => 'space' in o.rec && o.rec.space === 'mem').length, 0, `${rule.name}: pages sent after the mark`);
    if (rule.kind === 'precopy') {
      // Every iteration's end waited: each iter record follows a mark with no page between.
      for (const [i, o] of out.entries()) {
        if (o.rec.t !== 'iter') continue;
        assert.equal(out[i - 1]?.rec.t, 'mark', 'an iteration begins right after its catch-up');
      }
    }
    assert.ok(sender.stats().pausedAt !== undefined);
  }
});

test('without catch-up (virtual time) no mark is ever sent', async () => {
  const g = guest();
  const sender = new MigrationSender({ guest: g, rule: new SmartStop(), keyer: await createContentKeyer(), now: 0 });
  let now = 0;
  let marks = 0;
  for (let n = 0; n < 200_000 && !sender.awaitingAck; n++) {
    const batch = sender.next(now, 16 * 1024);
    marks += batch.filter((o) => o.rec.t === 'mark').length;
    now += batch.reduce((a, o) => a + o.size, 0) / 2500 + (batch.length === 0 ? 0.5 : 0);
  }
  assert.ok(sender.awaitingAck);
  assert.equal(marks, 0);
});

test('the digests at done are the image as it is, computed while paused from keys kept ready: only pages written since the last refresh are read', async () => {
  const keyer = await createContentKeyer();
  const g = guest();
  const sender = new MigrationSender({ guest: g, rule: new SmartStop(), keyer, now: 0 });
  let now = 0;
  let reads = 0;
  let counting = false;
  const readPage = g.memory.readPage.bind(g.memory);
  g.memory.readPage = (i) => { if (counting) reads++; return readPage(i); };
  let finalPages = 0;
  let done: OutRecord | undefined;
  for (let n = 0; n < 200_000 && !sender.awaitingAck; n++) {
    const batch = sender.next(now, 16 * 1024);
    for (const o of batch) {
      if (o.rec.t === 'pause') counting = true;
      else if (counting && 'space' in o.rec && o.rec.space === 'mem') finalPages++;
      if (o.rec.t === 'done') done = o;
    }
    now += batch.reduce((a, o) => a + o.size, 0) / 2500 + (batch.length === 0 ? 0.5 : 0);
  }
  counting = false;
  assert.ok(done !== undefined && done.rec.t === 'done');
  assert.equal(done.rec.memDigest, memoryDigest(g.memory, keyer));
  assert.equal(done.rec.diskDigest, diskDigest(g.disk, keyer));
  // While paused: the final pages are read to be sent (and perhaps keyed), nothing else of the 512.
  assert.ok(reads <= 2 * finalPages, `${reads} page reads while paused for ${finalPages} final pages`);
});
