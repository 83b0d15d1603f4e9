/**
 * bench/openflow — the OpenFlow 1.3 codec's throughput on what a controller
 * handles most: FLOW_MOD encoding (a rule push), flow-stats reply decoding
 * (the per-period traffic poll: 200 flows a message), PACKET_IN decoding,
 * and the incremental decoder over a stream cut into 1500-byte chunks.
 * Prints messages/s and MB/s for each; no assertion (figures, not tests).
 *
 * Usage: node --import tsx bench/openflow/codec.ts [seconds-per-case]   (default 1)
 */
import { OpenFlowDecoder } from '../../src/openflow/decoder.ts';
import { decodeMessage, encodeMessage } from '../../src/openflow/message-codec.ts';
import { flowMod, type OfMessage } from '../../src/openflow/messages.ts';
import type { FlowStats } from '../../src/openflow/multipart.ts';

const SECONDS = Number(process.argv[2] ?? 1);

function mac(i: number): string {
  return `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
}

const rule = (i: number): OfMessage =>
  flowMod({
    xid: i,
    cookie: BigInt(i),
    priority: 100,
    match: { ethSrc: mac(i), ethDst: mac(i + 1) },
    instructions: [{ type: 'apply-actions', actions: [{ type: 'set-field', field: { tunnelId: 5000n } }, { type: 'output', port: 2, maxLen: 0 }] }],
  });

const flows: FlowStats[] = Array.from({ length: 200 }, (_, i) => ({
  tableId: 0,
  durationSec: 10,
  durationNsec: 0,
  priority: 100,
  idleTimeout: 0,
  hardTimeout: 0,
  flags: 0,
  cookie: BigInt(i),
  packetCount: 1000n,
  byteCount: 1_000_000n,
  match: { ethSrc: mac(i), ethDst: mac(i + 1) },
  instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 2, maxLen: 0 }] }],
}));
const statsReply = encodeMessage({ type: 'multipart-reply', xid: 1, flags: 0, body: { kind: 'flow', flows } });
const packetIn = encodeMessage({ type: 'packet-in', xid: 0, bufferId: 0xffffffff, totalLen: 1400, reason: 0, tableId: 0, cookie: 0n, match: { inPort: 3 }, data: Buffer.alloc(1400, 7) });
const stream = Buffer.concat(Array.from({ length: 2000 }, (_, i) => encodeMessage(rule(i))));

function measure(name: string, bytesPerOp: number, messagesPerOp: number, op: () => void): void {
  for (let i = 0; i < 100; i++) op();
  let ops = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) op();
    ops += 20;
  }
  const s = (performance.now() - start) / 1000;
  const msgs = (ops * messagesPerOp) / s;
  console.log(`${name.padEnd(44)} ${Math.round(msgs).toLocaleString('en').padStart(12)} messages/s ${((ops * bytesPerOp) / s / 1e6).toFixed(1).padStart(8)} MB/s`);
}

console.log(`OpenFlow 1.3 codec, node ${process.version}, ${SECONDS} s per case`);
let n = 0;
measure('encode FLOW_MOD (eth_src, eth_dst, 2 actions)', encodeMessage(rule(0)).length, 1, () => void encodeMessage(rule(n++)));
measure('decode flow-stats reply (200 flows)', statsReply.length, 200, () => void decodeMessage(statsReply));
measure('decode PACKET_IN (1400-byte frame)', packetIn.length, 1, () => void decodeMessage(packetIn));
const chunks: Buffer[] = [];
for (let off = 0; off < stream.length; off += 1500) chunks.push(stream.subarray(off, off + 1500));
measure('stream decoder, 2000 FLOW_MODs in 1500-byte chunks', stream.length, 2000, () => {
  const dec = new OpenFlowDecoder({ onMessage: () => undefined, onDecodeError: (e) => { throw e; } });
  for (const c of chunks) dec.push(c);
});
