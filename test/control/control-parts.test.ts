import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTROL_PROTOCOL_VERSION, decodeControllerMessage, decodeDaemonMessage, encodeControlMessage, MAX_FACT_ITEMS,
  type ControllerMessage, type DaemonMessage, type WireFacts,
} from '../../src/control/control-protocol.ts';
import { encodeControllerMessage, HELLO_FACTS_SEQ, joinFacts, joinRules, joinTraffic, splitControllerMessage, splitDaemonMessage } from '../../src/control/control-parts.ts';
import { formatMac } from '../../src/common/mac.ts';

const LIMIT = 64 * 1024;
const mac = (i: number): string => formatMac(0x020000000000 + i);

function traffic(pairs: number): Extract<DaemonMessage, { type: 'traffic' }> {
  const entries = Array.from({ length: pairs }, (_, i) => ({ src: mac(i % 997), dst: mac(1000 + Math.floor(i / 997)), frames: i + 1, bytes: 64 * (i + 1) }));
  return { type: 'traffic', seq: 9, snapshot: { startMs: 1000, endMs: 2000, entries } };
}

function facts(ports: number, links: number): WireFacts {
  return {
    hostId: 'h1', role: 'spoke', listen: { transport: 'tcp', host: '127.0.0.1', port: 7000 }, rulesVersion: 3, linksVersion: 4,
    ports: Array.from({ length: ports }, (_, i) => ({ name: `vm${i}`, kind: 'memory' as const, mac: mac(i), mtu: 1500, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0 })),
    links: Array.from({ length: links }, (_, i) => ({ peer: `p${i}`, kind: 'fast-path' as const, state: 'up' as const, direction: 'outbound' as const, txFrames: 1, txBytes: 2, rxFrames: 3, rxBytes: 4, txDropped: 0, decodeErrors: 0, reconnects: 0 })),
  };
}

/** Every part is under the limit and decodes with the protocol's own decoder. */
function decodedDaemon(parts: DaemonMessage[], limit = LIMIT): DaemonMessage[] {
  return parts.map((p) => {
    const text = encodeControlMessage(p);
    assert.ok(Buffer.byteLength(text) <= limit, `a part of ${Buffer.byteLength(text)} bytes`);
    const d = decodeDaemonMessage(text, limit);
    assert.ok(d.ok, d.ok ? '' : d.error.message);
    return d.message;
  });
}

test('a message that fits goes whole, without a part header', () => {
  const m = traffic(10);
  assert.deepEqual(splitDaemonMessage(m, LIMIT, () => 1), [m]);
});

test('a traffic report over the limit is cut into parts under it, and joins back to the same report', () => {
  const m = traffic(5000);
  const parts = decodedDaemon(splitDaemonMessage(m, LIMIT, () => 1)) as Array<Extract<DaemonMessage, { type: 'traffic' }>>;
  assert.ok(parts.length > 1);
  parts.forEach((p, i) => assert.deepEqual(p.part, { index: i, count: parts.length }));
  assert.deepEqual(joinTraffic(parts), m);
});

test('a rule set over the limit is cut into parts of one version that join back', () => {
  const rules = Array.from({ length: 3000 }, (_, i) => ({ id: `vm-${mac(i)}`, priority: 100, src: 'any', dst: mac(i), action: { link: 'hub' } }));
  const m: ControllerMessage = { type: 'set-rules', version: 12, rules };
  const parts = splitControllerMessage(m, LIMIT).map((p) => {
    const d = decodeControllerMessage(encodeControlMessage(p), LIMIT);
    assert.ok(d.ok);
    return d.message as Extract<ControllerMessage, { type: 'set-rules' }>;
  });
  assert.ok(parts.length > 1);
  assert.ok(parts.every((p) => p.version === 12));
  assert.deepEqual(joinRules(parts), m);
});

test('a hello with facts over the limit: part 1 in the hello, the rest as facts of seq 0; lists capped per part', () => {
  const f = facts(MAX_FACT_ITEMS + 500, 300);
  const hello: DaemonMessage = { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', facts: f };
  const parts = decodedDaemon(splitDaemonMessage(hello, 1 << 20, () => 99), 1 << 20);
  assert.equal(parts[0]!.type, 'hello');
  assert.ok(parts.slice(1).every((p) => p.type === 'facts' && p.seq === HELLO_FACTS_SEQ));
  const lists = parts.map((p) => (p.type === 'hello' || p.type === 'facts' ? p.facts : undefined)!);
  assert.ok(lists.every((x) => x.ports.length <= MAX_FACT_ITEMS));
  assert.deepEqual(joinFacts(lists), f);
});

test('facts over the limit take the next facts seq', () => {
  const parts = splitDaemonMessage({ type: 'facts', facts: facts(2000, 0) }, LIMIT, () => 5);
  assert.ok(parts.length > 1 && parts.every((p) => p.type === 'facts' && p.seq === 5));
});

test('parts that disagree outside their lists do not join', () => {
  const parts = splitDaemonMessage(traffic(5000), LIMIT, () => 1) as Array<Extract<DaemonMessage, { type: 'traffic' }>>;
  const forged = parts.map((p, i) => (i === 1 ? { ...p, snapshot: { ...p.snapshot, endMs: 3000 } } : p));
  assert.throws(() => joinTraffic(forged), { code: 'VNET_ERR_CONTROL_PARTS', reason: 'mismatch' });
  const f = splitDaemonMessage({ type: 'facts', facts: facts(2000, 0) }, LIMIT, () => 5).map((p) => (p as { facts: WireFacts }).facts);
  assert.throws(() => joinFacts(f.map((x, i) => (i === 1 ? { ...x, rulesVersion: 4 } : x))), { code: 'VNET_ERR_CONTROL_PARTS' });
});

test('what cannot be cut to fit is a typed error, not a message over the limit', () => {
  assert.throws(() => splitDaemonMessage({ type: 'event', event: { type: 'link-down', peer: 'h2', kind: 'backbone', reason: 'x'.repeat(2000) } }, 1000, () => 1),
    { code: 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE' });
  assert.throws(() => splitControllerMessage({ type: 'set-rules', version: 1, rules: [{ id: 'x'.repeat(2000), priority: 1, src: 'any', dst: 'any', action: 'drop' }] }, 1000),
    { code: 'VNET_ERR_CONTROL_MESSAGE_TOO_LARGE' });
});

test('a controller message\'s wire texts: its own encoding when it goes whole, else exactly its parts\' encodings', () => {
  const rules = (n: number): ControllerMessage => ({ type: 'set-rules', version: 3, rules: Array.from({ length: n }, (_, i) => ({ id: `vm-${mac(i)}`, priority: 100, src: 'any', dst: mac(i), action: { link: 'hub' } })) });
  const small = rules(10);
  assert.deepEqual(encodeControllerMessage(small, LIMIT), [encodeControlMessage(small)]);
  const large = rules(3000);
  const texts = encodeControllerMessage(large, LIMIT);
  assert.ok(texts.length > 1);
  assert.deepEqual(texts, splitControllerMessage(large, LIMIT).map(encodeControlMessage));
  const links: ControllerMessage = { type: 'set-links', version: 2, links: [], members: Array.from({ length: 5 }, (_, i) => `h${i}`) };
  assert.deepEqual(encodeControllerMessage(links, LIMIT), [encodeControlMessage(links)]);
});
