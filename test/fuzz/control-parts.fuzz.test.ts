import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROL_PROTOCOL_VERSION, decodeControllerMessage, decodeDaemonMessage, encodeControlMessage, type ControllerMessage, type DaemonMessage } from '../../src/control/control-protocol.ts';
import { assembled, joinFacts, joinLinks, joinRules, joinTraffic, splitControllerMessage, splitDaemonMessage } from '../../src/control/control-parts.ts';
import { ControlMessageError, ControlMessageTooLargeError, ControlPartError, ControlProtocolVersionError } from '../../src/control/errors.ts';
import { PartAssembler, WHOLE, type PartLimits } from '../../src/control/part-assembler.ts';
import { fuzz, showText, type Rand } from './fuzz-kit.ts';
import { mutateJson, mutateText } from './mutate.ts';

/**
 * Control messages larger than the limit, in parts (src/control/control-parts.ts,
 * part-assembler.ts): real sequences — a traffic report, a hello's and a
 * facts message's facts, a rule set and a link set split at a small limit —
 * then broken as a sender could break them: parts dropped, repeated,
 * swapped, taken from another sequence, their headers or bodies mutated.
 * Each part is decoded and handed to the receiver's assembler, as the
 * controller and the daemon do. Oracle: decoding fails only with the codec's
 * errors; the assembler never throws, refuses only with a ControlPartError,
 * never holds more than its byte limit; a sequence sent intact comes out
 * whole and equal to what was split; whatever comes out whole is made only
 * of parts that decoded.
 */

const MAX_BYTES = 700;
const LIMITS: PartLimits = { maxParts: 64, maxBytes: 64 * 1024, timeoutMs: 30_000 };

const mac = (i: number): string => `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

function port(i: number): unknown {
  return { name: `vm${i}`, kind: 'memory', mac: mac(i), mtu: 1500, rxFrames: i, rxBytes: i * 60, txFrames: i, txBytes: i * 60, txDropped: 0 };
}

function facts(ports: number): unknown {
  return { hostId: 'h1', role: 'spoke', ports: Array.from({ length: ports }, (_, i) => port(i + 1)), links: [], rulesVersion: 1, linksVersion: 1 };
}

const daemonWhole = [
  { type: 'traffic', seq: 7, snapshot: { startMs: 1000, endMs: 2000, entries: Array.from({ length: 40 }, (_, i) => ({ src: mac(i + 1), dst: mac(i + 2), frames: i + 1, bytes: 100 * (i + 1) })) } },
  { type: 'facts', facts: facts(12) },
  { type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, hostId: 'h1', facts: facts(10) },
] as unknown as DaemonMessage[];

const controllerWhole = [
  { type: 'set-rules', version: 9, rules: Array.from({ length: 30 }, (_, i) => ({ id: `r${i}`, priority: i, src: 'any', dst: mac(i + 1), action: i % 2 === 0 ? { link: 'h2' } : 'drop' })) },
  { type: 'set-links', version: 4, links: Array.from({ length: 12 }, (_, i) => ({ peer: `h${i + 2}`, address: { transport: 'tls', host: `10.0.0.${i + 2}`, port: 7000 }, reason: 'fast path' })) },
] as unknown as ControllerMessage[];

let factsSeq = 1;
const daemonSequences = daemonWhole.map((m) => splitDaemonMessage(m, MAX_BYTES, () => factsSeq++).map((p) => encodeControlMessage(p)));
const controllerSequences = controllerWhole.map((m) => splitControllerMessage(m, MAX_BYTES).map((p) => encodeControlMessage(p)));

interface PartsInput {
  readonly side: 'daemon' | 'controller';
  readonly which: number;
  readonly texts: string[];
  readonly intact: boolean;
}

function generate(rand: Rand): PartsInput {
  const side = rand.chance(0.5) ? 'daemon' : 'controller';
  const sequences = side === 'daemon' ? daemonSequences : controllerSequences;
  const which = rand.int(sequences.length);
  const texts = [...sequences[which]!];
  if (rand.chance(0.1)) return { side, which, texts, intact: true };
  for (let m = 1 + rand.int(3); m > 0; m--) {
    if (texts.length === 0) texts.push(rand.pick(rand.pick(sequences)));
    const i = rand.int(texts.length);
    switch (rand.int(7)) {
      case 0: texts.splice(i, 1); break;
      case 1: texts.splice(i, 0, texts[rand.int(texts.length)]!); break;
      case 2: { const j = rand.int(texts.length); [texts[i], texts[j]] = [texts[j]!, texts[i]!]; break; }
      case 3: texts.splice(i, 0, rand.pick(rand.pick(sequences))); break;
      case 4: texts[i] = mutateText(rand, texts[i]!, ['"part"', '"index":', '"count":', '0', '1', '-1', '4097', '}', ','], texts); break;
      default: {
        // The part header, the group (seq or version) or a body field, as JSON.
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(texts[i]!) as Record<string, unknown>;
        } catch {
          break; // a part already mutated as text
        }
        if (typeof parsed !== 'object' || parsed === null) break;
        const part = parsed['part'];
        if (typeof part === 'object' && part !== null && rand.chance(0.5)) {
          const key = rand.pick(['index', 'count'] as const);
          (part as Record<string, unknown>)[key] = rand.pick([0, 1, 2, 63, 64, 65, 4096, 4097, -1, 1.5]);
        } else if (rand.chance(0.3)) {
          for (const key of ['seq', 'version']) if (typeof parsed[key] === 'number') parsed[key] = rand.pick([0, 1, 6, 8, 9, 10, 2 ** 53]);
        } else {
          texts[i] = JSON.stringify(mutateJson(rand, parsed, { repeats: [2, 50], nests: [3, 20] }));
          break;
        }
        texts[i] = JSON.stringify(parsed);
      }
    }
  }
  return { side, which, texts, intact: false };
}

const isCodecError = (e: unknown): boolean => e instanceof ControlMessageError || e instanceof ControlMessageTooLargeError || e instanceof ControlProtocolVersionError;

function stripParts(m: unknown): unknown {
  const { part: _part, seq: _seq, ...rest } = m as Record<string, unknown>;
  return (m as { type: string }).type === 'traffic' ? m : rest;
}

test('fuzz: control messages in parts (split, reassembly, join) both ways', async (t) => {
  await fuzz<PartsInput>(t, {
    name: 'control-parts',
    generate,
    run({ side, which, texts, intact }) {
      const traffic = new PartAssembler<Extract<DaemonMessage, { type: 'traffic' }>>('traffic report', LIMITS);
      const factsIn = new PartAssembler<Extract<DaemonMessage, { type: 'facts' | 'hello' }>['facts']>('facts', LIMITS);
      const rules = new PartAssembler<Extract<ControllerMessage, { type: 'set-rules' }>>('rule set', LIMITS);
      const links = new PartAssembler<Extract<ControllerMessage, { type: 'set-links' }>>('link set', LIMITS);
      const wholes: unknown[] = [];
      let refused = 0;
      let now = 0;
      for (const text of texts) {
        now += 10;
        const bytes = Buffer.byteLength(text);
        const d = side === 'daemon' ? decodeDaemonMessage(text) : decodeControllerMessage(text);
        if (!d.ok) {
          assert.ok(isCodecError(d.error), `decode failed with ${String(d.error)}`);
          continue;
        }
        const m = d.message;
        let r;
        if (m.type === 'traffic') r = assembled(traffic.accept(m.seq, m.part ?? WHOLE, bytes, m, now), joinTraffic);
        else if (m.type === 'facts' || m.type === 'hello') r = assembled(factsIn.accept(m.type === 'hello' ? 0 : (m.seq ?? 0), m.part ?? WHOLE, bytes, m.facts, now), joinFacts);
        else if (m.type === 'set-rules') r = assembled(rules.accept(m.version, m.part ?? WHOLE, bytes, m, now), joinRules);
        else if (m.type === 'set-links') r = assembled(links.accept(m.version, m.part ?? WHOLE, bytes, m, now), joinLinks);
        else continue;
        if (r.state === 'refused') {
          assert.ok(r.error instanceof ControlPartError, `refused with ${String(r.error)}`);
          refused++;
        } else if (r.state === 'whole') wholes.push(r.message);
        for (const a of [traffic, factsIn, rules, links]) assert.ok(a.pendingBytes <= LIMITS.maxBytes, 'an assembler over its byte limit');
      }
      if (intact) {
        assert.equal(refused, 0);
        const original = side === 'daemon' ? daemonWhole[which]! : controllerWhole[which]!;
        const whole = wholes.at(-1);
        const want = original.type === 'hello' ? original.facts : original.type === 'facts' ? original.facts : original;
        assert.deepEqual(stripParts(whole), stripParts(want), 'an intact sequence comes out whole and equal');
      }
      return wholes.length > 0 ? (refused > 0 ? 'whole+refused' : 'whole') : refused > 0 ? 'refused' : 'nothing-whole';
    },
    show: (i) => `${i.side} sequence ${i.which}: ${i.texts.map((x) => showText(x, 300)).join(' | ')}`,
  });
});
