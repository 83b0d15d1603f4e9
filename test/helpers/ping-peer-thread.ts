import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { waitFor } from './wait.ts';

/**
 * The far end of a control channel on a thread of its own, for the tests of
 * a heartbeat whose own loop stalls (the controller's ping of a daemon, a
 * daemon's keepalive of its controller): it answers every ping at once,
 * whatever this thread's loop is doing — as a peer in another process does.
 *
 * `stallAtNextPing` busies this thread's loop for `stallMs` once the next
 * ping has reached the peer (and its write has completed here), and only
 * then does the peer answer: the pong comes in while this loop is busy, and
 * is still unread in the socket when the beat that fell due meanwhile runs. With `times` > 1 it does so at that
 * many pings in a row (a loop busy at every beat).
 *
 * A peer in this thread instead (the tests' first version) needed this
 * loop to turn twice after every ping — to read it and answer, then to read
 * the answer — so a loaded machine that did not run this process for an
 * interval right after a beat made the heartbeat judge a peer silent that
 * had not yet been given the chance to answer: a failure of the test, not
 * of the heartbeat. A process frozen whole (peer thread too) for an interval
 * right after a spared beat still fails, as it should: the tests give the
 * heartbeat 1 s (at load 13 on the 2-core machine this process once did not
 * run for 2 s after a stall).
 */
export interface PingPeer {
  /** The control channel URL to dial (a server peer); '' for a client peer. */
  readonly url: string;
  /** Connections the peer accepted (a server peer). */
  connections(): number;
  /** The close code the peer saw, 0 while its connection is open. */
  closedWith(): number;
  /** The pings the peer answered. */
  pings(): number;
  /** See above; resolves, once two more pings came after the stalls (the second sent by a beat that judged), with the time line of pings and stalls for the assertion messages. */
  stallAtNextPing(stallMs: number, times?: number): Promise<string>;
}

export interface PingPeerTls {
  ca: string;
  cert: string;
  key: string;
}

/** Slots of the memory both threads share. */
const PINGS = 0;
const WANTED = 1;
const STARTED = 2;
const CONNECTIONS = 3;
const CLOSED = 4;

const PEER = `
const { workerData, parentPort } = require('node:worker_threads');
const WebSocket = require(workerData.ws);
const s = new Int32Array(workerData.shared);
const [PINGS, WANTED, STARTED, CONNECTIONS, CLOSED] = [${PINGS}, ${WANTED}, ${STARTED}, ${CONNECTIONS}, ${CLOSED}];
const now = () => performance.timeOrigin + performance.now();
let stalls = 0;
function answer(ws) {
  ws.on('ping', (data) => {
    Atomics.add(s, PINGS, 1);
    parentPort.postMessage({ ping: now() });
    if (stalls < Atomics.load(s, WANTED)) {
      const mine = ++stalls;
      parentPort.postMessage({ stall: mine });
      // Answer only once the other thread's loop is busy: the pong waits there unread.
      for (let seen = Atomics.load(s, STARTED); seen < mine; seen = Atomics.load(s, STARTED)) Atomics.wait(s, STARTED, seen, 1000);
    }
    ws.pong(data);
  });
  ws.on('close', (code) => { Atomics.store(s, CLOSED, code); parentPort.postMessage({ closed: code, at: now() }); });
  ws.on('error', () => {});
}
if (workerData.role === 'client') {
  const ws = new WebSocket(workerData.url, { ...workerData.tls, perMessageDeflate: false, autoPong: false });
  ws.on('open', () => ws.send(workerData.first));
  // A daemon acknowledges what it is pushed, so the controller does not push it again (nothing queued toward it).
  ws.on('message', (d) => {
    let m;
    try { m = JSON.parse(String(d)); } catch { return; }
    const kind = m.type === 'set-links' ? 'links' : m.type === 'set-rules' ? 'rules' : undefined;
    if (kind !== undefined && typeof m.version === 'number') ws.send(JSON.stringify({ type: 'ack', kind, version: m.version, ok: true }));
  });
  answer(ws);
} else {
  const server = require('node:https').createServer({ ...workerData.tls, requestCert: true, rejectUnauthorized: false });
  const wss = new WebSocket.WebSocketServer({ server, path: '/control', autoPong: false });
  wss.on('connection', (ws) => {
    Atomics.add(s, CONNECTIONS, 1);
    ws.once('message', () => ws.send(workerData.first));
    answer(ws);
  });
  server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
}
`;

interface Start {
  role: 'client' | 'server';
  /** The client's URL to dial. */
  url?: string;
  tls: PingPeerTls;
  /** What the peer sends first: the client its hello, the server its welcome (to the first message). */
  first: string;
}

async function startPeer(t: { after(fn: () => Promise<void>): void }, init: Start): Promise<PingPeer> {
  const shared = new SharedArrayBuffer(8 * Int32Array.BYTES_PER_ELEMENT);
  const s = new Int32Array(shared);
  const worker = new Worker(PEER, { eval: true, workerData: { ...init, shared, ws: createRequire(import.meta.url).resolve('ws') } });
  t.after(async () => { await worker.terminate(); });
  const events: string[] = [];
  let t0: number | undefined;
  const at = (time: number): string => { t0 ??= time; return `+${Math.round(time - t0)}`; };
  let stallMs = 0;
  let port = 0;
  worker.on('message', (m: { ping?: number; stall?: number; closed?: number; at?: number; port?: number }) => {
    if (m.port !== undefined) port = m.port;
    if (m.ping !== undefined) events.push(`${at(m.ping)} ping`);
    if (m.closed !== undefined) events.push(`${at(m.at!)} closed ${m.closed}`);
    if (m.stall === undefined) return;
    const stall = m.stall;
    // From the next turn's check phase: by then this thread has seen its ping written (a write completes a
    // turn later), so nothing is queued toward the peer and its silence is judged like any other.
    setImmediate(() => setImmediate(() => {
      const start = performance.timeOrigin + performance.now();
      Atomics.store(s, STARTED, stall);
      Atomics.notify(s, STARTED);
      const end = performance.now() + stallMs;
      while (performance.now() < end) { /* the loop is monopolised */ }
      events.push(`${at(start)} stalled ${stallMs}`);
    }));
  });
  let failed: Error | undefined;
  worker.on('error', (err) => { failed = err; });
  if (init.role === 'server') await waitFor(() => { if (failed) throw failed; return port > 0; }, 'the peer thread listening', 30_000);
  const timeline = (): string => `time line (ms): ${events.join(', ')}`;
  return {
    url: init.role === 'server' ? `wss://127.0.0.1:${port}/control` : '',
    connections: () => Atomics.load(s, CONNECTIONS),
    closedWith: () => Atomics.load(s, CLOSED),
    pings: () => Atomics.load(s, PINGS),
    async stallAtNextPing(ms, times = 1) {
      stallMs = ms;
      const boundMs = 30_000 + 2 * times * ms;
      /** `done`, or a failure at once once the connection has closed: nothing more will come. */
      const until = (done: () => boolean, what: string) => (): boolean => {
        if (failed) throw failed;
        if (Atomics.load(s, CLOSED) !== 0) throw new Error(`the connection closed while waiting for ${what}; ${timeline()}`);
        return done();
      };
      await waitFor(until(() => Atomics.load(s, PINGS) >= 2, 'two pings'), () => `two pings answered; ${timeline()}`, boundMs);
      Atomics.store(s, WANTED, times);
      await waitFor(until(() => Atomics.load(s, STARTED) === times, 'the stalls'), () => `the stalls; ${timeline()}`, boundMs);
      const after = Atomics.load(s, PINGS);
      await waitFor(until(() => Atomics.load(s, PINGS) >= after + 2, 'two more pings'), () => `two more pings after the stalls; ${timeline()}`, boundMs);
      return timeline();
    },
  };
}

/** A daemon's end on its own thread: dials `url`, says `hello`, acknowledges the links and rules it is pushed, answers pings. */
export function pingingClient(t: { after(fn: () => Promise<void>): void }, url: string, tls: PingPeerTls, hello: string): Promise<PingPeer> {
  return startPeer(t, { role: 'client', url, tls, first: hello });
}

/** A controller's end on its own thread: accepts the agent, answers its first message with `welcome`, answers pings. */
export function pingingServer(t: { after(fn: () => Promise<void>): void }, tls: PingPeerTls, welcome: string): Promise<PingPeer> {
  return startPeer(t, { role: 'server', tls, first: welcome });
}
