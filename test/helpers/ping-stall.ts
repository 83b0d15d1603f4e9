import type { WebSocket } from 'ws';
import type { ManualClock } from '../../src/common/clock.ts';
import { stallAtTurnEnd } from './loop-stall.ts';
import { waitFor } from './wait.ts';

/** How the end that judges beats: its heartbeat's clock and interval. */
export interface HeartbeatTime {
  clock: ManualClock;
  intervalMs: number;
}

/**
 * Resolves in a timers phase once this loop has turned past a poll phase:
 * whatever was in the sockets when called has been read, and what runs then
 * runs where a beat's timer does, before the turn's reads.
 */
function timersAfterAPoll(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(() => setTimeout(resolve, 0))));
}

/**
 * The peer `ws` of a heartbeat that runs in this process on a manual clock
 * (the end that pings): counts its pings, keeps a time line of what
 * happened (pings, stalls, the close, in the clock's ms) for assertion
 * messages, and beats the heartbeat by moving its clock. Time at the judging
 * end moves only here, so nothing rests on this process getting the CPU on
 * time, where a real-time heartbeat found no pong from this in-process peer,
 * starved with it, and cut it whatever the heartbeat did.
 */
class PingedPeer {
  readonly #ws: WebSocket;
  readonly #time: HeartbeatTime;
  readonly #events: string[] = [];
  pings = 0;
  /** Run at each ping, after counting it (its pong is written). */
  onPing: (() => void) | undefined;

  constructor(ws: WebSocket, time: HeartbeatTime) {
    this.#ws = ws;
    this.#time = time;
    ws.on("ping", () => { this.pings++; this.note("ping"); console.log("peer ping", this.#time.clock.now()); this.onPing?.(); });
    ws.on("message", (d) => console.log("peer msg", String(d).slice(0, 60)));
    ws.on('close', (code) => { this.note(`closed ${code}`); });
  }

  note(what: string): void {
    this.#events.push(`${Math.round(this.#time.clock.now())} ${what}`);
  }

  timeline(): string {
    const ws = this.#ws;
    return `time line (clock ms): ${this.#events.join(', ')}${ws.readyState === ws.OPEN ? '' : `; socket ${['connecting', 'open', 'closing', 'closed'][ws.readyState]}`}`;
  }

  /** Until `done`, failing at once once the socket has closed: nothing more will come. */
  async until(done: () => boolean, what: string): Promise<void> {
    const ws = this.#ws;
    await waitFor(() => {
      if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) throw new Error(`the connection closed while waiting for ${what}; ${this.timeline()}`);
      return done();
    }, () => `${what}; ${this.timeline()}`, 30_000);
  }

  /**
   * One beat, its ping awaited: its timer runs once the pong to the last ping
   * has been read; with `busyMs`, the loop is then busy that long in the same
   * turn, before its reads (the beat's ping leaves that much later), and the
   * timers that fell due meanwhile run as it turns again.
   */
  async beat(busyMs = 0): Promise<void> {
    await timersAfterAPoll();
    const before = this.pings;
    const { clock } = this.#time;
    clock.advance(this.#time.intervalMs);
    if (busyMs > 0) {
      this.note(`beat, busy ${busyMs}`);
      clock.hold(busyMs);
      stallAtTurnEnd(clock, 0);
    }
    await this.until(() => this.pings > before, 'a ping after a beat');
  }
}

/**
 * Beats the heartbeat of the other end of `ws` (the end that pings, in this
 * process, on a manual clock) and stalls that end's event loop just after
 * `ws` answered a ping: the pong is written, not yet read by the other end,
 * when its heartbeat's timer runs (`stallAtTurnEnd`: the beat fires once,
 * late by `stallMs`, as Node's does after a busy spell). With `times` > 1,
 * it stalls so after each of that many pings in a row (a loop busy at every
 * beat). Resolves once three more pings came after the stalls, i.e. the
 * heartbeat ran on, with the time line for the test's assertion messages; a
 * wait that fails says it too.
 */
export async function stallAtNextPing(ws: WebSocket, time: HeartbeatTime, stallMs: number, times = 1): Promise<string> {
  const peer = new PingedPeer(ws, time);
  let begun = 0;
  let stalls = 0;
  await peer.beat();
  await peer.beat();
  peer.onPing = (): void => {
    if (begun === times) return;
    // The pong to this ping is written: the stalled beat runs before this end reads it.
    begun++;
    stallAtTurnEnd(time.clock, stallMs, () => { peer.note(`stall ${stallMs}`); stalls++; });
  };
  await peer.beat();
  await peer.until(() => stalls === times, `the stalls (${times})`);
  // The last stalled beat's ping, answered; then three on time.
  await peer.until(() => peer.pings >= 3 + times, 'the ping of the last stalled beat');
  for (let i = 0; i < 3; i++) await peer.beat();
  return peer.timeline();
}

/**
 * Beats the heartbeat of the other end of `ws` as `stallAtNextPing` does,
 * but the third beat's turn is busy for `busyMs` between the beat's timer
 * and its reads, so its ping leaves that much after the timer ran; then
 * three beats on time. Resolves with the time line once their pings came.
 */
export async function busyBeforePing(ws: WebSocket, time: HeartbeatTime, busyMs: number): Promise<string> {
  const peer = new PingedPeer(ws, time);
  await peer.beat();
  await peer.beat();
  await peer.beat(busyMs);
  for (let i = 0; i < 3; i++) await peer.beat();
  return peer.timeline();
}
