/**
 * Control messages larger than one message (protocol 3): the cost of sending
 * a traffic report and a rule set in parts.
 *
 *   node --import tsx bench/control/parts.ts [--pairs 50000] [--vms 20000] [--rounds 5]
 *
 * For each: parts and bytes on the wire at the default 1 MiB limit, and the
 * time of one round of split + encode (sender) and decode + reassemble + join
 * (receiver: the protocol's own decoder and part-assembler.ts), median of
 * `--rounds`. Both ends in this one process; no sockets.
 */
import { formatMac } from '../../src/common/mac.ts';
import {
  DEFAULT_MAX_CONTROL_MESSAGE_BYTES, decodeControllerMessage, decodeDaemonMessage, encodeControlMessage, type ControllerMessage, type DaemonMessage,
} from '../../src/control/control-protocol.ts';
import { assembled, joinRules, joinTraffic, splitControllerMessage, splitDaemonMessage } from '../../src/control/control-parts.ts';
import { PartAssembler, WHOLE } from '../../src/control/part-assembler.ts';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const pairs = arg('--pairs', 50_000);
const vms = arg('--vms', 20_000);
const rounds = arg('--rounds', 5);
const limit = DEFAULT_MAX_CONTROL_MESSAGE_BYTES;
const mac = (i: number): string => formatMac(0x020000000000 + i);

type Traffic = Extract<DaemonMessage, { type: 'traffic' }>;
type SetRules = Extract<ControllerMessage, { type: 'set-rules' }>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function measure<M>(what: string, round: (seq: number) => { wire: string[]; back: M | undefined }, count: (m: M) => number, expected: number): void {
  const times: number[] = [];
  let wire: string[] = [];
  for (let r = 1; r <= rounds; r++) {
    const t0 = performance.now();
    const out = round(r);
    times.push(performance.now() - t0);
    wire = out.wire;
    if (out.back === undefined || count(out.back) !== expected) throw new Error(`${what}: not reassembled whole`);
  }
  const bytes = wire.reduce((n, w) => n + Buffer.byteLength(w), 0);
  console.log(`${what.padEnd(32)} ${String(wire.length).padStart(5)} parts ${(bytes / 2 ** 20).toFixed(2).padStart(7)} MiB   split+encode+decode+join ${median(times).toFixed(1).padStart(7)} ms (median of ${rounds})`);
}

const side = Math.ceil(Math.sqrt(pairs));
const entries = Array.from({ length: pairs }, (_, i) => ({ src: mac(i % side), dst: mac(side + Math.floor(i / side)), frames: 1 + (i % 9), bytes: 1000 + i }));
const traffic = new PartAssembler<Traffic>('traffic report');
measure(`traffic report, ${pairs} pairs`, (seq) => {
  const wire = splitDaemonMessage({ type: 'traffic', seq, snapshot: { startMs: 1000, endMs: 2000, entries } }, limit, () => seq).map(encodeControlMessage);
  let back: Traffic | undefined;
  for (const text of wire) {
    const d = decodeDaemonMessage(text, limit);
    if (!d.ok || d.message.type !== 'traffic') throw new Error('decode');
    const r = assembled(traffic.accept(d.message.seq, d.message.part ?? WHOLE, text.length, d.message, 0), joinTraffic);
    if (r.state === 'whole') back = r.message;
  }
  return { wire, back };
}, (m) => m.snapshot.entries.length, pairs);

const rules = Array.from({ length: vms }, (_, i) => ({ id: `vm-${mac(i)}`, priority: 100, src: 'any', dst: mac(i), action: { link: `h${i % 1000}` } }));
const ruleSets = new PartAssembler<SetRules>('rule set');
measure(`rule set, ${vms} VMs`, (version) => {
  const wire = splitControllerMessage({ type: 'set-rules', version, rules }, limit).map(encodeControlMessage);
  let back: SetRules | undefined;
  for (const text of wire) {
    const d = decodeControllerMessage(text, limit);
    if (!d.ok || d.message.type !== 'set-rules') throw new Error('decode');
    const r = assembled(ruleSets.accept(d.message.version, d.message.part ?? WHOLE, text.length, d.message as SetRules, 0), joinRules);
    if (r.state === 'whole') back = r.message;
  }
  return { wire, back };
}, (m) => m.rules.length, vms);
