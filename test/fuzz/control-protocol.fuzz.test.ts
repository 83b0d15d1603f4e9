import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VnetError } from '../../src/common/errors.ts';
import {
  CONTROL_PROTOCOL_VERSION,
  decodeControllerMessage,
  decodeDaemonMessage,
  desiredLinkFromWire,
  encodeControlMessage,
  factsFromWire,
  factsToWire,
  snapshotFromWire,
  type DecodeResult,
} from '../../src/control/control-protocol.ts';
import { ControlMessageError, ControlMessageTooLargeError, ControlProtocolVersionError } from '../../src/control/errors.ts';
import { RuleError } from '../../src/dataplane/errors.ts';
import { parseRules } from '../../src/dataplane/forwarding-rule.ts';
import { validateReport } from '../../src/topology/report-validation.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { fuzz, showText, typedOutcome } from './fuzz-kit.ts';
import { deepNestText, mutateJson, mutateText, randomJson } from './mutate.ts';

/**
 * The control channel's messages (src/control/control-protocol.ts) both
 * ways, and the stages that take a decoded message further: a traffic
 * report's validation (controller), facts and desired links converted from
 * the wire, a rule set compiled by the daemon. Inputs: every message type,
 * mutated as JSON (a node of another type, keys dropped or unknown, arrays
 * blown up, deep nesting) or as text (characters, truncation, splices), plus
 * random JSON, random text and binary frames. Oracle: the decoders never
 * throw and fail only with the codec's three error classes; whatever they
 * accept is JSON that decodes again to the same message, and the later
 * stages take it or refuse it with their own typed error.
 */

const MAX_BYTES = 256 * 1024;

const facts = factsToWire(
  new FakeDaemon('h1', { vms: [{ mac: '02:00:00:00:00:01', ip: '10.0.0.1' }, { mac: '02:00:00:00:00:02' }], listen: { transport: 'tls', host: '127.0.0.1', port: 7000 } }).facts(),
);
const vm = { mac: '02:00:00:00:00:01', port: 'vm1', ip: '10.0.0.1', name: 'web' };

const daemonMessages: unknown[] = [
  { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', auth: { joinToken: 'vnetj_abcdefghijklmnop' }, facts },
  { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', auth: { credential: 'vnetc_abcdefghijklmnop' }, facts },
  { type: 'facts', facts },
  { type: 'traffic', seq: 3, snapshot: { startMs: 1000, endMs: 2000, entries: [{ src: '02:00:00:00:00:01', dst: 'ff:ff:ff:ff:ff:ff', frames: 1, bytes: 60 }, { src: '02:00:00:00:00:02', dst: '02:00:00:00:00:01', frames: 10, bytes: 15000 }] } },
  { type: 'ack', kind: 'rules', version: 2, ok: true },
  { type: 'ack', kind: 'links', version: 2, ok: false, error: { code: 'VNET_ERR_RULE', message: 'no' } },
  { type: 'event', event: { type: 'link-down', peer: 'hub', kind: 'backbone', reason: 'timeout' } },
  { type: 'event', event: { type: 'port-added', port: facts.ports[0] } },
  { type: 'migration', id: 'm-1', state: 'prepared', address: { host: '127.0.0.1', port: 8000 } },
  { type: 'migration', id: 'm-1', state: 'progress', progress: { phase: 'memory', iteration: 2, bytesSent: 100, pagesLeft: 5, ramPages: 64, dirtyRate: 12.5, etaMs: null, elapsedMs: 30 } },
  { type: 'migration', id: 'm-1', state: 'resumed', stats: { held: 3, flushed: 3, relayed: 0, lost: 0, announced: 2 } },
];

const controllerMessages: unknown[] = [
  { type: 'welcome', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', updatePeriodMs: 1000, credential: 'vnetc_abcdefghijklmnop' },
  { type: 'set-links', version: 4, links: [{ peer: 'h2', address: { transport: 'tls', host: '10.0.0.2', port: 7000 }, reason: 'vm1↔vm2', dial: true }] },
  {
    type: 'set-rules',
    version: 5,
    rules: [
      { id: 'r1', priority: 100, src: 'any', dst: '02:00:00:00:00:02', action: { link: 'h2' } },
      { id: 'r2', priority: 10, src: '!02:00:00:00:00:03', dst: 'any', action: 'drop' },
      { id: 'r3', priority: 1, src: 'any', dst: '02:00:00:00:00:01', action: { port: 'vm1' } },
    ],
  },
  { type: 'error', code: 'VNET_ERR_X', message: 'bad', fatal: false, inReplyTo: 'traffic' },
  { type: 'migrate-prepare', id: 'm-1', vm, from: 'h2' },
  { type: 'migrate-start', id: 'm-1', vm, to: 'h3', address: { host: '10.0.0.3', port: 8000 }, rule: 'time-bound', deadlineMs: 5000 },
  { type: 'migrate-commit', id: 'm-1', reason: 'ready' },
];

const TEXT_TOKENS = ['{', '}', '[', ']', ',', ':', '"', '\\', '\\u0000', '\\ud800', 'null', 'true', '-0', '1e999', '0x10', 'NaN', '"__proto__"', ' ', '\n'];

const isCodecError = (e: unknown): boolean => e instanceof ControlMessageError || e instanceof ControlMessageTooLargeError || e instanceof ControlProtocolVersionError;

function input(rand: Parameters<typeof mutateJson>[0], corpus: readonly unknown[]): unknown {
  const base = rand.pick(corpus);
  const mode = rand.int(24);
  if (mode === 0) return JSON.stringify(randomJson(rand, 4));
  if (mode === 1) return rand.chance(0.5) ? rand.bytes(rand.size(256)) : rand.bytes(rand.size(256)).toString('latin1');
  if (mode === 2) return deepNestText(rand.pick([50, 500, 2000, 20000]), JSON.stringify(base), rand.chance(0.5));
  if (mode === 3) return mutateText(rand, JSON.stringify(base), TEXT_TOKENS, corpus.map((m) => JSON.stringify(m)));
  if (mode === 4) return rand.pick([undefined, null, 42, {}, [], Symbol('x'), new Uint8Array(MAX_BYTES + 1), 'x'.repeat(MAX_BYTES + 1)]);
  if (mode === 5 || mode === 6) return JSON.stringify(base);
  if (mode < 12) return mutateText(rand, JSON.stringify(base), TEXT_TOKENS, corpus.map((m) => JSON.stringify(m)));
  return JSON.stringify(mutateJson(rand, base, { repeats: [2, 30, 200] }));
}

function checkAccepted<T>(r: DecodeResult<T>, again: (text: string) => DecodeResult<T>): T | undefined {
  if (!r.ok) {
    if (!isCodecError(r.error)) throw r.error;
    return undefined;
  }
  // What the decoder accepts is a message: it encodes, and decodes again to itself.
  const text = encodeControlMessage(r.message as Parameters<typeof encodeControlMessage>[0]);
  const second = again(text);
  assert.ok(second.ok, `a decoded message does not decode again: ${second.ok ? '' : second.error.message}`);
  assert.deepEqual(second.message, r.message);
  return r.message;
}

test('fuzz: control channel, daemon → controller (decode, report validation, facts)', async (t) => {
  await fuzz(t, {
    name: 'control-daemon-message',
    generate: (rand) => input(rand, daemonMessages),
    run(data) {
      const m = checkAccepted(decodeDaemonMessage(data, MAX_BYTES), (s) => decodeDaemonMessage(s, MAX_BYTES));
      if (m === undefined) return (decodeDaemonMessage(data, MAX_BYTES) as { error: VnetError }).error.code;
      if (m.type === 'traffic') {
        const v = validateReport(snapshotFromWire('h1', m.snapshot));
        if (!v.ok) return typedOutcome(v.error, (e) => e instanceof VnetError);
      }
      if (m.type === 'facts' || m.type === 'hello') factsFromWire(m.facts);
      return `ok:${m.type}`;
    },
    show: (d) => (typeof d === 'string' ? showText(d) : String(d).slice(0, 200)),
  });
});

test('fuzz: control channel, controller → daemon (decode, rule compilation, desired links)', async (t) => {
  await fuzz(t, {
    name: 'control-controller-message',
    generate: (rand) => input(rand, controllerMessages),
    run(data) {
      const m = checkAccepted(decodeControllerMessage(data, MAX_BYTES), (s) => decodeControllerMessage(s, MAX_BYTES));
      if (m === undefined) return (decodeControllerMessage(data, MAX_BYTES) as { error: VnetError }).error.code;
      if (m.type === 'set-rules') {
        try {
          parseRules(m.rules, 'controller');
        } catch (err) {
          return typedOutcome(err, (e) => e instanceof RuleError);
        }
      }
      if (m.type === 'set-links') for (const l of m.links) desiredLinkFromWire(l);
      return `ok:${m.type}`;
    },
    show: (d) => (typeof d === 'string' ? showText(d) : String(d).slice(0, 200)),
  });
});
