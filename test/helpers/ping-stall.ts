import type { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

/**
 * Counts the pings `ws` answers, then busies this process's event loop for
 * `stallMs` just after it answers the next one (its pong written, not yet
 * read by the other end, which lives in this process too): the other end's
 * heartbeat falls due before it can read that pong. Resolves once three more
 * pings came after the stall, i.e. the heartbeat ran on.
 */
export async function stallAtNextPing(ws: WebSocket, stallMs: number): Promise<void> {
  let pings = 0;
  ws.on('ping', () => { pings++; });
  await waitFor(() => pings >= 2, 'pings answered');
  let stalled = false;
  ws.once('ping', () => {
    const end = performance.now() + stallMs;
    while (performance.now() < end) { /* the loop is monopolised */ }
    stalled = true;
  });
  await waitFor(() => stalled, 'the stall');
  const after = pings;
  await waitFor(() => pings >= after + 3, 'three more pings after the stall');
}
