import type { WebSocket } from 'ws';
import type { ManualClock } from '../../src/common/clock.ts';
import { stallAtTurnEnd } from './loop-stall.ts';
import { waitFor } from './wait.ts';

/** How the end that judges beats: its heartbeat's clock and interval. */
export interface HeartbeatTime {
  clock: ManualClock;
  intervalMs: number;
}

/** Resolves once this loop has turned past a poll phase: whatever was in the sockets when called has been read. */
function afterAPoll(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/**
 * Beats the heartbeat of the other end of `ws` (the end that pings, in this
 * process, on a manual clock) and stalls that end's event loop just after
 * `ws` answered a ping: the pong is written, not yet read by the other end,
 * when its heartbeat's timer runs. With `times` > 1, it stalls so after each
 * of that many pings in a row (a loop busy at every beat). Resolves once
 * three more pings came after the stalls, i.e. the heartbeat ran on, with
 * the time line of what happened (each ping and stall, in the clock's ms)
 * for the test's assertion messages; a wait that fails says it too.
 *
 * Time at the judging end is the manual clock, moved only here: a beat on
 * time comes once the pong to the last ping has been read (a turn of the
 * loop past the ping's arrival), a stalled one while it is still unread
 * (`stallAtTurnEnd`: the heartbeat's interval fires once, late by
 * `stallMs`, as Node's does after a busy spell). So nothing here rests on
 * this process getting the CPU on time, where a real-time heartbeat found
 * no pong from this in-process peer, starved with it, and cut it whatever
 * the heartbeat did.
 */
export async function stallAtNextPing(ws: WebSocket, time: HeartbeatTime, stallMs: number, times = 1): Promise<string> {
  const { clock, intervalMs } = time;
  const events: string[] = [];
  const at = (): string => `${Math.round(clock.now())}`;
  const timeline = (): string => `time line (clock ms): ${events.join(', ')}${ws.readyState === ws.OPEN ? '' : `; socket ${['connecting', 'open', 'closing', 'closed'][ws.readyState]}`}`;
  let pings = 0;
  /** Stalls begun (after a ping while `stalling`) and done. */
  let stalling = false;
  let begun = 0;
  let stalls = 0;
  ws.on('close', (code) => { events.push(`${at()} closed ${code}`); });
  /** `done`, or a failure at once once the socket has closed: nothing more will come. */
  const until = (done: () => boolean, what: string) => (): boolean => {
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) throw new Error(`the connection closed while waiting for ${what}; ${timeline()}`);
    return done();
  };
  ws.on('ping', () => {
    pings++;
    events.push(`${at()} ping`);
    if (stalling && begun < times) {
      // The pong to this ping is written: the stalled beat runs before this end reads it.
      begun++;
      stallAtTurnEnd(clock, stallMs, () => { events.push(`${at()} stall ${stallMs}`); stalls++; });
    }
  });
  /** One beat on time: the last pong read, a ping awaited. */
  const beat = async (): Promise<void> => {
    await afterAPoll();
    const before = pings;
    clock.advance(intervalMs);
    await waitFor(until(() => pings > before, 'a ping'), () => `a ping after a beat on time; ${timeline()}`, 30_000);
  };
  await beat();
  await beat();
  stalling = true;
  await beat();
  await waitFor(until(() => stalls === times, 'the stalls'), () => `the stalls (${stalls} of ${times}); ${timeline()}`, 30_000);
  stalling = false;
  // The last stalled beat's ping, answered; then three on time.
  await waitFor(until(() => pings >= 3 + times, 'the ping of the last stalled beat'), () => `the ping of the last stalled beat; ${timeline()}`, 30_000);
  for (let i = 0; i < 3; i++) await beat();
  return timeline();
}
