import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP relay to one target that can be cut: after `cut()` it
 * forwards nothing in either direction and accepts new connections without
 * forwarding them — a network partition as the client sees it (requests hang,
 * nothing is refused), not a closed port.
 */
export interface TcpCut {
  url: string;
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpCut(target: { host: string; port: number }): Promise<TcpCut> {
  let isCut = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    sockets.add(inbound);
    inbound.on('close', () => sockets.delete(inbound));
    inbound.on('error', () => undefined);
    if (isCut) return;
    const outbound = connect(target.port, target.host);
    sockets.add(outbound);
    outbound.on('close', () => { sockets.delete(outbound); inbound.destroy(); });
    outbound.on('error', () => undefined);
    inbound.on('close', () => outbound.destroy());
    inbound.on('data', (d: Buffer) => { if (!isCut) outbound.write(d); });
    outbound.on('data', (d: Buffer) => { if (!isCut) inbound.write(d); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() { isCut = true; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
