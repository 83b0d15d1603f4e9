import { createServer } from 'node:net';

/**
 * A loopback port that is free now and below the kernel's ephemeral range, so
 * no outgoing connection takes it before the process it is meant for binds it
 * (daemons started as separate processes, the benchmarks' deployments).
 */
export async function freePortBelowEphemeral(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (ok) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
  throw new Error('no free port in 20000-29999');
}
