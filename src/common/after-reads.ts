/**
 * Run `fn` once this turn of the event loop has read its sockets.
 *
 * After a busy spell Node runs the timers that fell due before it polls the
 * sockets: a deadline or heartbeat timer judged there misses whatever
 * arrived while the loop was busy (a pong, an answer), which is still unread
 * in the kernel's buffers. `setImmediate` runs in the check phase, after the
 * poll phase, so by then it has been read. Timers that judge a peer's
 * silence (the control channel's heartbeat, its hello deadline, a request's
 * timeout) judge here.
 */
export function afterReads(fn: () => void): void {
  setImmediate(fn);
}
