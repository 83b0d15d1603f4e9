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
