/**
 * The cost of rekeying native records (vnet-records/2, docs/wire-protocol.md).
 *
 *   node --import tsx bench/records/run.ts [--seconds N] [--size BYTES]
 *
 * 1. key schedule: one generation step (three HKDF-Expand-Label, TypeScript).
 * 2. the native forwarder sealing on its thread: JS writes one message of
 *    --size bytes at a time through `writeLink` to a loopback socket whose
 *    peer only counts the bytes (backlog kept under 4 MiB); Gbit/s of
 *    plaintext for /1 (no rekeying), /2 with the default threshold, and /2
 *    updating its key every 64 records and every record, side by side from
 *    one run. Figures from a shared machine swing between runs: compare
 *    within a run.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { NativeForwarder } from '../../src/dataplane/native-forwarder.ts';
import { directionsFromMaterial, exporterFor, nextGeneration } from '../../src/dataplane/record-keys.ts';
import { DEFAULT_LIMITS, DEFAULT_REKEY, type RekeyThresholds } from '../../src/dataplane/record-layer.ts';
import { nativeRecordsAttach } from '../../src/dataplane/record-socket.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const seconds = Number(arg('--seconds') ?? 2);
const size = Number(arg('--size') ?? 1504);

function keySchedule(): void {
  const d = directionsFromMaterial(randomBytes(exporterFor(2).bytes), 'dialer', 2).tx;
  const n = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) nextGeneration(d);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log(`key schedule (TypeScript): ${us.toFixed(1)} µs per generation`);
}

async function pair(): Promise<{ fd: number; peer: Socket; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  const [ours] = await accepted;
  server.close();
  const handle = (ours as unknown as { _handle: { fd: number; readStop(): number } })._handle;
  handle.readStop();
  return { fd: handle.fd, peer, close: () => { ours.destroy(); peer.destroy(); } };
}

async function sealRate(version: 1 | 2, rekey: RekeyThresholds): Promise<number> {
  const fwd = NativeForwarder.open();
  const { fd, peer, close } = await pair();
  peer.on('data', () => undefined); // drained, not opened
  const { tx, rx } = directionsFromMaterial(randomBytes(exporterFor(version).bytes), 'listener', version);
  const id = fwd.attachLink(fd, 65_563, 64 << 20, { onBytes: () => undefined, onFailed: () => undefined, addCounts: () => undefined }, nativeRecordsAttach(tx, rx, DEFAULT_LIMITS, rekey, Buffer.alloc(0)));
  const msg = Buffer.alloc(size, 0x5a);
  let sent = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    for (let i = 0; i < 256; i++) {
      if (fwd.writeLink(id, [msg]) < 0) throw new Error('the link failed');
      sent += size;
    }
    if (fwd.backlog(id) > 4 << 20) await new Promise((r) => setImmediate(r));
  }
  while (fwd.backlog(id) > 0) await new Promise((r) => setTimeout(r, 1));
  fwd.detachLink(id);
  close();
  fwd.close();
  return (sent * 8) / seconds / 1e9;
}

keySchedule();
const cases: Array<[string, 1 | 2, RekeyThresholds]> = [
  ['/1 (no rekeying)', 1, DEFAULT_REKEY],
  ['/2, default threshold (2^34 bytes)', 2, DEFAULT_REKEY],
  ['/2, a key update every 64 records', 2, { records: 64, bytes: 2 ** 40 }],
  ['/2, a key update every record', 2, { records: 1, bytes: 2 ** 40 }],
];
console.log(`forwarder sealing ${size}-byte writes, ${seconds} s each:`);
for (const [name, version, rekey] of cases) console.log(`  ${name.padEnd(40)} ${(await sealRate(version, rekey)).toFixed(2)} Gbit/s of plaintext`);
