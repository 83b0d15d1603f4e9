/** Loopback fixtures for the native forwarder's link tests (native-forwarder.test.ts, native-records.test.ts). */
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import type { EndpointSink } from '../../src/dataplane/native-forwarder.ts';
import { encodeFrame } from '../../src/dataplane/frame-codec.ts';
import { encodeEcho, encodeGoodbye, encodeKeepalive } from '../../src/dataplane/wire-messages.ts';
import type { Rand } from '../fuzz/fuzz-kit.ts';

/** A connected loopback pair: `ours` is the accepted side (its reads stopped, for the forwarder). */
export async function socketPair(): Promise<{ ours: Socket; peer: Socket; fd: number; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect({ host: '127.0.0.1', port, noDelay: true });
  const [ours] = await accepted;
  server.close();
  const handle = (ours as unknown as { _handle: { fd: number; readStop(): number } })._handle;
  handle.readStop();
  return { ours, peer, fd: handle.fd, close: () => { ours.destroy(); peer.destroy(); } };
}

export function recorder(): { sink: EndpointSink; chunks: Buffer[]; failed: number[] } {
  const chunks: Buffer[] = [];
  const failed: number[] = [];
  return { chunks, failed, sink: { onBytes: (b) => chunks.push(Buffer.from(b)), onFailed: (e) => failed.push(e), addCounts: () => undefined } };
}

/** A valid stream of wire messages: keepalives, echoes, frames with and without the offload header, maybe a goodbye. */
export function validStream(rand: Rand): Buffer {
  const parts: Buffer[] = [];
  for (let i = rand.range(1, 12); i > 0; i--) {
    const k = rand.int(5);
    if (k === 0) parts.push(encodeKeepalive());
    else if (k === 1) parts.push(encodeEcho('echo-request', rand.bytes(8)));
    else if (k === 2) parts.push(encodeFrame({ data: rand.bytes(rand.range(14, 1600)), offload: rand.bytes(10) }));
    else parts.push(encodeFrame({ data: rand.bytes(rand.range(14, 3000)), offload: undefined }));
  }
  if (rand.chance(0.2)) parts.push(encodeGoodbye('normal', 'bye'));
  return Buffer.concat(parts);
}
