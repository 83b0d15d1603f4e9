import type { Socket } from 'node:net';

/**
 * Close a TCP socket with an RST (SO_LINGER 0), so that the peer sees a
 * reset at once rather than a FIN that leaves it half-open — or, when this
 * side has already ended its writing (`end()`), close it plainly.
 *
 * Node's `resetAndDestroy()` on a socket whose write side is shutting down
 * is refused by libuv (`uv_tcp_close_reset`: EINVAL) after Node has marked
 * the handle closing: the handle is never closed. Its descriptor leaks, no
 * 'close' comes, and at exit the process spins for ever in its handle
 * cleanup, waiting for that handle (Node 20). A FIN has gone out by then
 * anyway, so a plain close loses nothing the reset would have said.
 */
export function resetSocket(s: Socket): void {
  if (s.destroyed) return;
  if (s.writableEnded) s.destroy();
  else s.resetAndDestroy();
}
