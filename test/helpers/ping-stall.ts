import type { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

/**
 * Counts the pings `ws` answers, then busies this process's event loop for
 * `stallMs` just after it answers the next one (its pong written, not yet
 * read by the other end, which lives in this process too): the other end's
 * heartbeat falls due before it can read that pong. With `times` > 1, it
 * stalls so after each of that many pings in a row (a loop busy at every
 * beat). Resolves once three more pings came after the stalls, i.e. the
 * heartbeat ran on.
 */
export async function stallAtNextPing(ws: WebSocket, stallMs: number, times = 1): Promise<void> {
  let pings = 0;
  ws.on('ping', () => { pings++; });
  await waitFor(() => pings >= 2, 'pings answered');
  let stalls = 0;
  const stall = (): void => {
    const end = performance.now() + stallMs;
    while (performance.now() < end) { /* the loop is monopolised */ }
    if (++stalls === times) ws.off('ping', stall);
  };
  ws.on('ping', stall);
  await waitFor(() => stalls === times, 'the stalls');
  const after = pings;
  await waitFor(() => pings >= after + 3, 'three more pings after the stall');
}
