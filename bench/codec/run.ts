/**
 * Tunnel codec and link throughput.
 *
 *   node --import tsx bench/codec/run.ts [--seconds N] [--sizes 1500,65549] [--no-tls]
 *
 * 1. codec only: encode N frames (slab header + payload), lay the bytes out
 *    as a TCP receiver would see them (64 KiB chunks, messages straddling
 *    chunk edges) and decode them; frames/s and Gbit/s of Ethernet payload.
 * 2. loopback links: a TCP (and a TLS) link on 127.0.0.1; the sender keeps
 *    the socket backlog under 4 MiB and sends bursts of frames per tick, the
 *    receiver counts. Gbit/s of Ethernet payload delivered, frames dropped.
 *
 * Both ends run in this one process (one core for both), so the loopback
 * figures are a lower bound for two daemons on two cores. On a shared
 * machine the process may get less than a core: "per busy core" divides by
 * the CPU time the process actually had. BURST and BACKLOG (environment)
 * change the sender's frames per tick and backlog cap.
 */
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate } from '../../src/pki/certs.ts';
import type { Frame } from '../../src/common/frame.ts';
import { FrameDecoder, FrameEncoder, type DecoderSink } from '../../src/dataplane/frame-codec.ts';
import type { Link } from '../../src/dataplane/link-interface.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import type { Transport } from '../../src/dataplane/transport.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const seconds = Number(arg('--seconds') ?? 3);
const sizes = (arg('--sizes') ?? '1500,65549').split(',').map(Number);
const withTls = !args.includes('--no-tls');

function frameOf(size: number): Frame {
  const data = Buffer.alloc(size, 0xab);
  data.fill(0xff, 0, 6);
  return { data, offload: undefined };
}

const gbps = (bytes: number, ms: number): string => ((bytes * 8) / (ms * 1e6)).toFixed(2);

function codecOnly(size: number): void {
  const frame = frameOf(size);
  const count = Math.max(1500, Math.floor(100e6 / size)); // ~100 MB of frames
  const encoder = new FrameEncoder();
  let t0 = performance.now();
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    parts.push(encoder.frameHeader(frame));
    parts.push(frame.data);
  }
  const encodeMs = performance.now() - t0;
  const stream = Buffer.concat(parts);
  parts.length = 0;
  const chunks: Buffer[] = [];
  for (let off = 0; off < stream.length; off += 65536) chunks.push(stream.subarray(off, off + 65536));
  let frames = 0;
  let bytes = 0;
  const sink: DecoderSink = {
    onFrames: (fs) => {
      frames += fs.length;
      for (const f of fs) bytes += f.data.length;
    },
    onControl: () => {},
    onDecodeError: (e) => {
      throw e;
    },
  };
  // Three passes, each with a fresh decoder; the last (warm) one is reported.
  let decodeMs = 0;
  for (let pass = 0; pass < 3; pass++) {
    frames = 0;
    bytes = 0;
    const d = new FrameDecoder(sink);
    t0 = performance.now();
    for (const c of chunks) d.push(c);
    decodeMs = performance.now() - t0;
  }
  if (frames !== count) throw new Error(`decoded ${frames} of ${count}`);
  console.log(
    `codec      ${String(size).padStart(6)} B  header encode ${((count / encodeMs) * 1000 / 1e6).toFixed(2)} Mframe/s (${gbps(count * size, encodeMs)} Gbit/s)` +
      `  decode ${((count / decodeMs) * 1000 / 1e6).toFixed(2)} Mframe/s (${gbps(bytes, decodeMs)} Gbit/s)`,
  );
}

async function loopback(name: string, make: (host: string) => Transport, size: number): Promise<void> {
  const inbound: Link[] = [];
  const listener = await make('rx').listen({ host: '127.0.0.1', port: 0 }, (l) => inbound.push(l));
  const tx = await make('tx').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone', expectedPeer: 'rx' });
  while (inbound.length === 0) await new Promise((r) => setTimeout(r, 1));
  const rx = inbound[0]!;
  let rxBytes = 0;
  let rxFrames = 0;
  rx.onFrames((fs) => {
    rxFrames += fs.length;
    for (let i = 0; i < fs.length; i++) rxBytes += fs[i]!.data.length;
  });
  const frame = frameOf(size);
  const burst = Number(process.env.BURST ?? (size > 9000 ? 16 : 128));
  const start = performance.now();
  const end = start + seconds * 1000;
  const cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (performance.now() >= end) {
        resolve();
        return;
      }
      if (tx.backlogBytes < Number(process.env.BACKLOG ?? 4 * 1024 * 1024)) for (let i = 0; i < burst; i++) tx.send(frame);
      setImmediate(pump);
    };
    pump();
  });
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${name.padEnd(10)} ${String(size).padStart(6)} B  ${gbps(rxBytes, ms)} Gbit/s  ${((rxFrames / ms) * 1000 / 1000).toFixed(0)} kframe/s` +
      `  dropped ${tx.stats.txDropped}  cpu ${(((cpu.user + cpu.system) / 1000 / ms) * 100).toFixed(0)}% of one core` +
      `  → ${gbps(rxBytes, (cpu.user + cpu.system) / 1000)} Gbit/s per busy core`,
  );
  await tx.close();
  await listener.close();
}

const logger = silentLogger();
console.log(`node ${process.version}, ${seconds} s per loopback run; Ethernet payload bytes (no protocol headers) counted`);
for (const size of sizes) codecOnly(size);
for (const size of sizes) await loopback('tcp', (host) => new TcpTransport({ logger }, { localHost: host }), size);
if (withTls) {
  const ca = await createCa();
  const certs = { tx: await issueHostCertificate(ca, 'tx'), rx: await issueHostCertificate(ca, 'rx') };
  for (const size of sizes) {
    await loopback('tls', (host) => new TlsTransport({ logger }, { localHost: host, ca: ca.cert, ...certs[host as 'tx' | 'rx'] }), size);
  }
}
