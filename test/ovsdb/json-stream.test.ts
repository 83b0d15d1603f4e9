import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonStream } from '../../src/ovsdb/json-stream.ts';
import type { OvsdbProtocolError } from '../../src/ovsdb/errors.ts';

function split(chunks: readonly Buffer[], maxMessageBytes?: number): { values: unknown[]; errors: OvsdbProtocolError[] } {
  const values: unknown[] = [];
  const errors: OvsdbProtocolError[] = [];
  const s = new JsonStream({ onJson: (v) => values.push(v), onError: (e) => errors.push(e) }, maxMessageBytes === undefined ? {} : { maxMessageBytes });
  for (const c of chunks) s.push(c);
  return { values, errors };
}

const MESSAGES = [
  { id: 1, method: 'transact', params: ['Open_vSwitch', { op: 'select', table: 'Bridge', where: [] }] },
  { id: null, method: 'update', params: ['m', { Interface: { 'a-b': { new: { name: 'tap{0}', external_ids: ['map', [['iface-id', 'vm "ä" \\ }]']]] } } } }] },
  { id: 2, result: [{ rows: [] }], error: null },
  { id: 'echo', method: 'echo', params: [] },
];
const STREAM = Buffer.from(MESSAGES.map((m, i) => JSON.stringify(m) + (i % 2 ? '\n' : '')).join(''));

describe('OVSDB JSON stream splitter', () => {
  it('splits back-to-back JSON-RPC objects at every cut, with braces and quotes inside strings and UTF-8 split between chunks', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const r = split([STREAM.subarray(0, cut), STREAM.subarray(cut)]);
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.values, MESSAGES, `cut at ${cut}`);
    }
    assert.deepEqual(split([...STREAM].map((b) => Buffer.from([b]))).values, MESSAGES);
  });

  it('refuses what is not an object stream, an unparsable text and an oversized message, once each, by name', () => {
    assert.match(split([Buffer.from('[1,2]')]).errors[0]!.message, /expected a JSON object, got byte 0x5b/);
    assert.match(split([Buffer.from('{"id": 1, "result": tru}')]).errors[0]!.message, /not JSON/);
    const big = split([Buffer.from('{"x": "'), Buffer.alloc(100, 0x61), Buffer.from('"}')], 64);
    assert.equal(big.errors.length, 1);
    assert.match(big.errors[0]!.message, /over the 64-byte limit/);
    assert.equal(big.errors[0]!.code, 'VNET_ERR_OVSDB_PROTOCOL');
    const after = split([Buffer.from('x{"id":1}')]);
    assert.deepEqual(after.values, [], 'nothing is decoded after an error');
  });

  it('is total on 20 000 seeded random and mutated streams', () => {
    let a = 7;
    const rand = (): number => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 4294967296);
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(STREAM);
      for (let f = 0; f < 1 + Math.floor(rand() * 3); f++) bytes[Math.floor(rand() * bytes.length)] = i % 2 ? Math.floor(rand() * 256) : [0x7b, 0x7d, 0x22, 0x5c, 0x5b][Math.floor(rand() * 5)]!;
      const cut = Math.floor(rand() * bytes.length);
      const r = split([bytes.subarray(0, cut), bytes.subarray(cut)], 4096);
      assert.ok(r.errors.length <= 1);
    }
  });
});
