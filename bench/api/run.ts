// Operator API figures: HTTP request latency and rate (one client, keep-alive), and event fan-out over the
// WebSocket stream (events per second delivered to N clients). Runs against the in-memory model on loopback.
//   node --import tsx bench/api/run.ts [--requests N] [--events N] [--clients N]
import { WebSocket } from 'ws';
import { startFixtureServer } from '../../test/controller/api/api-fixture.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const requests = arg('requests', 2000);
const events = arg('events', 20000);
const clients = arg('clients', 4);

const f = await startFixtureServer();
const headers = { authorization: `Bearer ${f.token}` };

async function httpRun(path: string): Promise<void> {
  for (let i = 0; i < 50; i++) await (await fetch(`${f.server.url}${path}`, { headers })).arrayBuffer();
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < requests; i++) {
    const s = performance.now();
    const res = await fetch(`${f.server.url}${path}`, { headers });
    await res.arrayBuffer();
    lat.push(performance.now() - s);
  }
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number): string => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2);
  console.log(`GET ${path.padEnd(18)} ${requests} requests: ${(requests / secs).toFixed(0)} req/s, latency p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`);
}

await httpRun('/api/v1/hosts');
await httpRun('/api/v1/overview');

// Fan-out: N clients follow the stream; emit `events` events and time until every client has them all.
const wsUrl = `${f.server.url.replace(/^http/, 'ws')}/api/v1/events?token=${f.token}`;
const counts = new Array<number>(clients).fill(0);
const sockets: WebSocket[] = [];
let done: () => void = () => {};
const allIn = new Promise<void>((resolve) => (done = resolve));
await Promise.all(
  Array.from({ length: clients }, (_, i) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(wsUrl);
      sockets.push(ws);
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { kind: string };
        if (m.kind === 'hello') resolve();
        else if (++counts[i]! === events && counts.every((c) => c === events)) done();
      });
    }),
  ),
);
const t0 = performance.now();
for (let i = 0; i < events; i++) f.model.emit('rules-changed', { host: 'aws-1', version: i });
await allIn;
const secs = (performance.now() - t0) / 1000;
console.log(`event stream: ${events} events to ${clients} clients in ${secs.toFixed(2)} s: ${((events * clients) / secs).toFixed(0)} deliveries/s`);

for (const ws of sockets) ws.terminate();
await f.server.close();
