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
 */
export async function stallAtNextPing(ws: WebSocket, stallMs: number, times = 1): Promise<string> {
  const events: string[] = [];
  let t0: number | undefined;
  const at = (): string => { const now = performance.now(); t0 ??= now; return `+${Math.round(now - t0)}`; };
  const timeline = (): string => `time line (ms): ${events.join(', ')}${ws.readyState === ws.OPEN ? '' : `; socket ${['connecting', 'open', 'closing', 'closed'][ws.readyState]}`}`;
  let pings = 0;
  ws.on('ping', () => { pings++; events.push(`${at()} ping`); });
  ws.on('close', (code) => { events.push(`${at()} closed ${code}`); });
  await waitFor(() => pings >= 2, () => `two pings answered (${pings}); ${timeline()}`);
  let stalls = 0;
  const stall = (): void => {
    const end = performance.now() + stallMs;
    while (performance.now() < end) { /* the loop is monopolised */ }
    events.push(`${at()} stalled ${stallMs}`);
    if (++stalls === times) ws.off('ping', stall);
  };
  ws.on('ping', stall);
  await waitFor(() => stalls === times, () => `the stalls (${stalls} of ${times}); ${timeline()}`);
  const after = pings;
  await waitFor(() => pings >= after + 3, () => `three more pings after the stall (${pings - after}); ${timeline()}`);
  return timeline();
}
