/**
 * A loopback TCP proxy for native-records tests that reads the bytes going
 * each way: TLS records (content types 0x14..0x18, before the switch) are
 * skipped, native records (type 0 data, 1 KEY_UPDATE, then a u24 length; see
 * docs/wire-protocol.md) are counted by type. `edit` may change a chunk on
 * its way (a tampering proxy); the counts are of what was forwarded.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type TapDirection = 'toServer' | 'toClient';

export interface RecordWireTap {
  port: number;
  /** Native records seen so far per direction, by type. */
  counts: Record<TapDirection, { data: number; keyUpdate: number; other: number }>;
  close(): void;
}

/** Counts records in one direction's byte stream, in any chunking. */
function recordCounter(into: { data: number; keyUpdate: number; other: number }): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const tls = buf.length > 0 && buf[0]! >= 0x14 && buf[0]! <= 0x18;
      const head = tls ? 5 : 4;
      if (buf.length < head) return;
      const len = tls ? buf.readUInt16BE(3) : buf.readUIntBE(1, 3);
      if (buf.length < head + len) return;
      if (!tls) {
        if (buf[0] === 0) into.data++;
        else if (buf[0] === 1) into.keyUpdate++;
        else into.other++;
      }
      buf = buf.subarray(head + len);
    }
  };
}

export async function recordWireTap(port: number, edit?: (dir: TapDirection, chunk: Buffer) => Buffer): Promise<RecordWireTap> {
  const counts = { toServer: { data: 0, keyUpdate: 0, other: 0 }, toClient: { data: 0, keyUpdate: 0, other: 0 } };
  const sockets = new Set<Socket>();
  const server: Server = createServer((from) => {
    const to = connect({ host: '127.0.0.1', port, noDelay: true });
    from.setNoDelay(true);
    for (const s of [from, to]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => { from.destroy(); to.destroy(); });
    }
    const up = recordCounter(counts.toServer);
    const down = recordCounter(counts.toClient);
    from.on('data', (chunk: Buffer) => {
      const out = edit?.('toServer', chunk) ?? chunk;
      up(out);
      to.write(out);
    });
    to.on('data', (chunk: Buffer) => {
      const out = edit?.('toClient', chunk) ?? chunk;
      down(out);
      from.write(out);
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    port: (server.address() as { port: number }).port,
    counts,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
