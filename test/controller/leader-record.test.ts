import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLeaderRecord, parseLeaderRecord } from '../../src/controller/leader-record.ts';

test('the election key\'s value round-trips the leader\'s name and addresses', () => {
  const r = { name: 'c1', control: 'wss://10.0.0.1:7400/control', api: 'http://10.0.0.1:7070' };
  assert.deepEqual(parseLeaderRecord(encodeLeaderRecord(r)), r);
  assert.deepEqual(parseLeaderRecord(encodeLeaderRecord({ name: 'c2' })), { name: 'c2', control: undefined, api: undefined });
});

test('a plain name or a value that is not the record is a leader with no known addresses; an address of the wrong scheme is never followed', () => {
  assert.deepEqual(parseLeaderRecord('c1'), { name: 'c1' });
  assert.deepEqual(parseLeaderRecord('{"nom":"x"}'), { name: '{"nom":"x"}' });
  assert.deepEqual(parseLeaderRecord(JSON.stringify({ name: 'c1', control: 'http://evil/control', api: 'javascript:alert(1)' })), { name: 'c1', control: undefined, api: undefined });
  assert.deepEqual(parseLeaderRecord(JSON.stringify({ name: 'c1', control: 'not a url', api: `http://x/${'a'.repeat(3000)}` })), { name: 'c1', control: undefined, api: undefined });
});
