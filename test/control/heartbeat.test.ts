import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Heartbeat, silentPeer } from '../../src/control/heartbeat.ts';

test('a beat on time judges; a late one (the loop was busy) does not; never two spared in a row', () => {
  const hb = new Heartbeat(100, 0);
  assert.equal(hb.beat(100), true);
  assert.equal(hb.beat(210), true, 'a little late is on time');
  assert.equal(hb.beat(1210), false, 'ten intervals late: the answers may be unread');
  assert.equal(hb.beat(2210), true, 'late again, but the last one was spared');
  assert.equal(hb.beat(2310), true);
});

test('a beat that comes before the peer had half an interval to answer the last ping judges no one, and is no spare', () => {
  const hb = new Heartbeat(100, 0);
  assert.equal(hb.beat(100), true);
  hb.pinged(101);
  assert.equal(hb.beat(200), true, 'the ping a turn after its beat: an interval less a turn to answer');
  hb.pinged(290); // busy for 90 ms between the beat's timer and its ping
  assert.equal(hb.beat(300), false, 'the next beat 10 ms after that ping: not judged');
  hb.pinged(301);
  assert.equal(hb.beat(400), true, 'the one after judges');
  // A busy spell: the late beat is spared; its ping leaves after another one, when the next beat is already due.
  assert.equal(hb.beat(1400), false, 'late: spared');
  hb.pinged(2400);
  assert.equal(hb.beat(2401), false, 'late again, so not spared, but its ping is 1 ms old: not judged');
  hb.pinged(2402);
  assert.equal(hb.beat(2502), true, 'an interval later it judges');
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
