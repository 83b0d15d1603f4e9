// Accuracy of the userspace WAN relay on loopback: round trips through it for
// several one-way delays (min, median, p95 against 2 × delay), and the rate a
// bulk transfer reaches under several bandwidth caps.
//   node --import tsx bench/delay-relay/run.ts
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startDelayRelay } from '../../src/common/delay-relay.ts';
import { silentLogger } from '../../src/common/logger.ts';

const logger = silentLogger();
const q = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

const echo = createServer((s) => s.pipe(s).on('error', () => {}));
echo.listen(0, '127.0.0.1');
await once(echo, 'listening');
const echoPort = (echo.address() as { port: number }).port;

const direct: number[] = [];
{
  const c = connect({ host: '127.0.0.1', port: echoPort });
  c.setNoDelay(true);
  await once(c, 'connect');
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    c.write('x');
    await once(c, 'data');
    direct.push(performance.now() - t0);
  }
  c.destroy();
}
console.log(`loopback round trip without the relay: median ${q(direct, 0.5).toFixed(3)} ms`);
console.log('delay ms  target RTT  min RTT  median RTT  p95 RTT  (ms, 100 pings)');
for (const delayMs of [0.5, 1, 2, 5, 10, 15]) {
  const relay = await startDelayRelay({ logger }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: echoPort }, delayMs });
  const c = connect({ host: '127.0.0.1', port: relay.port });
  c.setNoDelay(true);
  await once(c, 'connect');
  const rtts: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    c.write('x');
    await once(c, 'data');
    rtts.push(performance.now() - t0);
  }
  c.destroy();
  await relay.close();
  console.log(`${String(delayMs).padStart(8)}  ${(2 * delayMs).toFixed(1).padStart(10)}  ${q(rtts, 0).toFixed(3).padStart(7)}  ${q(rtts, 0.5).toFixed(3).padStart(10)}  ${q(rtts, 0.95).toFixed(3).padStart(7)}`);
}
echo.close();

const sink = createServer((s: Socket) => {
  let bytes = 0;
  let first = 0;
  s.on('data', (c: Buffer) => {
    if (bytes === 0) first = performance.now();
    bytes += c.length;
  });
  s.on('end', () => s.end(JSON.stringify({ bytes, ms: performance.now() - first })));
});
sink.listen(0, '127.0.0.1');
await once(sink, 'listening');
const sinkPort = (sink.address() as { port: number }).port;
console.log('cap Mbit/s  measured Mbit/s  (8 MiB bulk transfer, 1 ms delay)');
for (const mbit of [10, 50, 100, 500]) {
  const relay = await startDelayRelay({ logger }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: sinkPort }, delayMs: 1, bandwidthMbit: mbit });
  const c = connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
  await once(c, 'connect');
  const size = mbit <= 10 ? 2 * 1024 * 1024 : 8 * 1024 * 1024;
  c.end(Buffer.alloc(size, 1));
  let reply = '';
  c.on('data', (d: Buffer) => (reply += d.toString()));
  await once(c, 'end');
  const r = JSON.parse(reply) as { bytes: number; ms: number };
  console.log(`${String(mbit).padStart(10)}  ${(((r.bytes - 65536) * 8) / (r.ms / 1000) / 1e6).toFixed(1).padStart(15)}`);
  c.destroy();
  await relay.close();
}
sink.close();
