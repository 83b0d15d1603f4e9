import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTROL_PROTOCOL_VERSION, decodeControllerMessage, decodeDaemonMessage, encodeControlMessage, factsFromWire, factsToWire, snapshotFromWire, snapshotToWire,
} from '../../src/control/control-protocol.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';

const facts = factsToWire(new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01', ip: '10.0.0.1' }], listen: { transport: 'tls', host: '127.0.0.1', port: 7000 } }).facts());

test('every daemon message round-trips through encode and decode', () => {
  const messages = [
    { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', auth: { joinToken: 'vnetj_abcdefghijklmnop' }, facts },
    { type: 'facts', facts },
    { type: 'traffic', seq: 3, snapshot: { startMs: 1, endMs: 2, entries: [{ src: '02:00:00:00:00:01', dst: 'ff:ff:ff:ff:ff:ff', frames: 1, bytes: 60 }] } },
    { type: 'ack', kind: 'rules', version: 2, ok: true },
    { type: 'ack', kind: 'links', version: 2, ok: false, error: { code: 'VNET_ERR_RULE', message: 'no' } },
    { type: 'event', event: { type: 'link-down', peer: 'hub', kind: 'backbone', reason: 'timeout' } },
  ];
  for (const m of messages) {
    const r = decodeDaemonMessage(JSON.stringify(m));
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.message, m);
  }
});

test('facts and snapshots convert to the wire and back', () => {
  const d = new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] });
  assert.deepEqual(factsFromWire(factsToWire(d.facts())), d.facts());
  const snap = { host: 'h1', startMs: 10, endMs: 20, entries: [{ src: 0x020000000001, dst: 0xffffffffffff, frames: 2, bytes: 120 }] };
  assert.deepEqual(snapshotFromWire('h1', snapshotToWire(snap)), snap);
});

test('bad input becomes a typed error naming what is wrong, never a throw', () => {
  const cases: Array<[unknown, string, RegExp]> = [
    ['', 'VNET_ERR_CONTROL_MESSAGE', /not JSON/],
    ['null', 'VNET_ERR_CONTROL_MESSAGE', /invalid message/],
    [Buffer.from('deadbeef', 'hex'), 'VNET_ERR_CONTROL_MESSAGE', /binary/],
    [42, 'VNET_ERR_CONTROL_MESSAGE', /not text/],
    [JSON.stringify({ type: 'hello', protocol: 99, hostId: 'h1', facts }), 'VNET_ERR_CONTROL_PROTOCOL_VERSION', /version 99/],
    [JSON.stringify({ type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: '../etc', facts }), 'VNET_ERR_CONTROL_MESSAGE', /at hostId/],
    [JSON.stringify({ type: 'ack', kind: 'rules', version: 1, ok: false }), 'VNET_ERR_CONTROL_MESSAGE', /error exactly when/],
    [JSON.stringify({ type: 'traffic', seq: 1, snapshot: { startMs: 0, endMs: 1, entries: [{ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', frames: 1.5, bytes: 1 }] } }), 'VNET_ERR_CONTROL_MESSAGE', /entries\[0\]\.frames/],
    [JSON.stringify({ type: 'facts', facts: { ...facts, surprise: true } }), 'VNET_ERR_CONTROL_MESSAGE', /unknown key\(s\) surprise/],
    ['x'.repeat(2000), 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE', /exceeds the maximum of 1000/],
  ];
  for (const [input, code, why] of cases) {
    const r = decodeDaemonMessage(input, 1000);
    assert.equal(r.ok, false, `accepted ${String(input).slice(0, 40)}`);
    if (!r.ok) {
      assert.equal(r.error.code, code, String(input).slice(0, 60));
      assert.match(r.error.message, why);
    }
  }
});

test('the decoders survive random bytes and random mutations of valid messages', () => {
  let seed = 12345;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
  const valid = encodeControlMessage({ type: 'facts', facts });
  for (let i = 0; i < 2000; i++) {
    const bytes = Buffer.alloc(Math.floor(rnd() * 64));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rnd() * 256);
    const chars = valid.split('');
    for (let k = 0; k < 3; k++) chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(32 + Math.floor(rnd() * 95));
    for (const input of [bytes, bytes.toString('latin1'), chars.join('')]) {
      const a = decodeDaemonMessage(input);
      const b = decodeControllerMessage(input);
      assert.equal(typeof a.ok, 'boolean');
      assert.equal(typeof b.ok, 'boolean');
    }
  }
});

test('controller messages are validated too: rules with bad MACs, links without an address', () => {
  const bad = [
    { type: 'set-rules', version: 1, rules: [{ id: 'r', priority: 1, src: 'any', dst: 'nope', action: 'drop' }] },
    { type: 'set-links', version: 1, links: [{ peer: 'h2', reason: 'x' }] },
    { type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', updatePeriodMs: 0 },
  ];
  for (const m of bad) assert.equal(decodeControllerMessage(JSON.stringify(m)).ok, false, JSON.stringify(m));
  assert.equal(decodeControllerMessage(JSON.stringify({ type: 'set-rules', version: 1, rules: [{ id: 'r', priority: 1, src: 'any', dst: '02:00:00:00:00:01', action: { link: 'h2' } }] })).ok, true);
});

test("port security travels: a port's counters and the MAC conflicts in facts, conflicts and port limits as events", () => {
  const base = new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01' }] }).facts();
  const security = { locked: true, learnedMacs: 1, 'spoofed-source': 5, 'mac-limit': 0, 'mac-rate': 0, 'flood-rate': 7 };
  const withSecurity = { ...base, ports: base.ports.map((p) => ({ ...p, security })), macConflicts: 3 };
  assert.deepEqual(factsFromWire(factsToWire(withSecurity)), withSecurity);
  for (const event of [
    { type: 'mac-conflict', mac: '02:00:00:00:00:01', seenAt: 'backbone link hub', home: 'port vm1', by: 'port', frames: 1 },
    { type: 'port-limit', port: 'vm1', limit: 'mac-rate', frames: 9 },
  ]) {
    const r = decodeDaemonMessage(JSON.stringify({ type: 'event', event }));
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.message, { type: 'event', event });
  }
  const bad = decodeDaemonMessage(JSON.stringify({ type: 'event', event: { type: 'port-limit', port: 'vm1', limit: 'everything', frames: 1 } }));
  assert.equal(bad.ok, false, 'an unknown limit is refused');
});
