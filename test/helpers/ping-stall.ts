import type { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

/**
 * Counts the pings `ws` answers, then busies this process's event loop for
 * `stallMs` just after it answers the next one (its pong written, not yet
 * read by the other end, which lives in this process too): the other end's
 * heartbeat falls due before it can read that pong. With `times` > 1, it
 * stalls so after each of that many pings in a row (a loop busy at every
 * beat). Resolves once three more pings came after the stalls, i.e. the
 * heartbeat ran on, with the time line of what happened (each ping and
 * stall, in ms from the first ping) for the test's assertion messages; a
 * wait that fails says it too.
 *
 * The other end lives in this process: after each beat its ping is read,
 * and the pong to it written, only when this process's loop turns again.
 * A loaded machine that does not run this process for longer than the
 * heartbeat's interval right then (a descheduling the stall did not cause)
 * makes the next beat find no pong, whatever the heartbeat does: an
 * interval of a few hundred ms is the machine's speed, not the behaviour,
 * so the tests give the heartbeat 500 ms. The waits here allow for it too.
 */
export async function stallAtNextPing(ws: WebSocket, stallMs: number, times = 1): Promise<string> {
  const events: string[] = [];
  let t0: number | undefined;
  const at = (): string => { const now = performance.now(); t0 ??= now; return `+${Math.round(now - t0)}`; };
  const timeline = (): string => `time line (ms): ${events.join(', ')}${ws.readyState === ws.OPEN ? '' : `; socket ${['connecting', 'open', 'closing', 'closed'][ws.readyState]}`}`;
  let pings = 0;
  ws.on('ping', () => { pings++; events.push(`${at()} ping`); });
  ws.on('close', (code) => { events.push(`${at()} closed ${code}`); });
  const boundMs = 30_000 + 2 * times * stallMs;
  /** `done`, or a failure at once once the socket has closed: nothing more will come. */
  const until = (done: () => boolean, what: string) => (): boolean => {
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) throw new Error(`the connection closed while waiting for ${what}; ${timeline()}`);
    return done();
  };
  await waitFor(until(() => pings >= 2, 'two pings'), () => `two pings answered (${pings}); ${timeline()}`, boundMs);
  let stalls = 0;
  const stall = (): void => {
    const end = performance.now() + stallMs;
    while (performance.now() < end) { /* the loop is monopolised */ }
    events.push(`${at()} stalled ${stallMs}`);
    if (++stalls === times) ws.off('ping', stall);
  };
  ws.on('ping', stall);
  await waitFor(until(() => stalls === times, 'the stalls'), () => `the stalls (${stalls} of ${times}); ${timeline()}`, boundMs);
  const after = pings;
  await waitFor(until(() => pings >= after + 3, 'three more pings'), () => `three more pings after the stall (${pings - after}); ${timeline()}`, boundMs);
  return timeline();
}
