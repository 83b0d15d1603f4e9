import { createServer } from 'node:net';

/** Ports this process handed out: a later call never returns one of them again. */
const handedOut = new Set<number>();

/**
 * A loopback port that is free now and below the kernel's ephemeral range, so
 * no outgoing connection takes it before the process it is meant for binds it
 * (daemons started as separate processes, the benchmarks' deployments).
 *
 * The port is free only until its process binds it, and an overlay asks for a
 * dozen before any daemon starts: two calls drawing the same free number
 * would give two daemons one port (one in ~180 overlays of 11 ports), so a
 * number is never handed out twice by one process.
 */
export async function freePortBelowEphemeral(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (handedOut.has(port)) continue;
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (ok) {
      await new Promise((r) => s.close(r));
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port in 20000-29999');
}
