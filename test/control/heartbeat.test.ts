import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { Heartbeat, silentPeer, startHeartbeat } from '../../src/control/heartbeat.ts';

test('a beat on time judges; a late one (the loop was busy) does not; never two spared in a row', () => {
  const hb = new Heartbeat(100, 0);
  assert.equal(hb.beat(100), true);
  hb.pinged(100);
  assert.equal(hb.beat(210), true, 'a little late is on time');
  hb.pinged(210);
  assert.equal(hb.beat(1210), false, 'ten intervals late: the answers may be unread');
  hb.pinged(1210);
  assert.equal(hb.beat(2310), true, 'late again, but the last one was spared');
  hb.pinged(2310);
  assert.equal(hb.beat(2410), true);
});

test('lateness counts from when the last pings left, not from the last beat', () => {
  const hb = new Heartbeat(100, 0);
  assert.equal(hb.beat(100), true);
  hb.pinged(220); // busy for 120 ms between the beat's timer and its pings
  assert.equal(hb.beat(320), true, 'an interval after the pings: on time');
});

test('startHeartbeat: each beat runs after the turn\'s reads, and the next falls due an interval after its pings left', async () => {
  const clock = new ManualClock();
  const beats: Array<[number, boolean]> = [];
  const hb = startHeartbeat(clock, 100, (judging) => { beats.push([clock.now(), judging]); });
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  clock.advance(100);
  assert.deepEqual(beats, [], 'not in the timer\'s turn: after its reads');
  await turn();
  assert.deepEqual(beats, [[100, true]]);
  // The next beat's timer runs, then the loop is busy for 120 ms before its reads: the beat's pings leave at 320.
  clock.advance(100);
  clock.stall(120);
  await turn();
  assert.deepEqual(beats, [[100, true], [320, true]], 'one beat, its pings at 320 (an interval timer had beaten again at 300, a moment after them)');
  clock.advance(99);
  await turn();
  assert.equal(beats.length, 2, 'nothing before 420');
  clock.advance(1);
  await turn();
  assert.deepEqual(beats.at(-1), [420, true]);
  // A loop busy for five intervals: that beat is late and spared; the next one judges.
  clock.stall(500);
  await turn();
  assert.deepEqual(beats.at(-1), [920, false]);
  clock.advance(100);
  await turn();
  assert.deepEqual(beats.at(-1), [1020, true]);
  hb.stop();
  clock.advance(1000);
  await turn();
  assert.equal(beats.length, 5, 'stopped: no more beats');
});

test('a silent peer is condemned at a judging beat, unless data toward it is draining', () => {
  const peer = { alive: false, queued: 0 };
  assert.equal(silentPeer(peer, 0, false), false, 'not at a beat that does not judge');
  assert.equal(silentPeer(peer, 0, true), true, 'silent, nothing queued');
  assert.equal(silentPeer({ alive: true, queued: 0 }, 0, true), false, 'it answered');
  const slow = { alive: false, queued: 0 };
  assert.equal(silentPeer(slow, 1_000_000, true), false, 'a rule set just queued: the ping waits behind it');
  assert.equal(silentPeer(slow, 400_000, true), false, 'draining');
  assert.equal(silentPeer(slow, 400_000, true), true, 'not draining: it reads nothing');
});
