/**
 * A continuous, checked TCP byte stream between two VMs, for the cutover
 * benchmark and tests: byte i of the stream is i mod 251, so a gap, a
 * duplicate or a corruption shows at the first wrong byte; a reset shows as
 * an error. Run inside the VMs' namespaces:
 *
 *   node --import tsx bench/cutover/stream-check.ts serve PORT          # prints one JSON line at the end
 *   node --import tsx bench/cutover/stream-check.ts send HOST PORT KBPS # sends until SIGTERM
 *
 * The server prints `{"bytes":N,"ok":true}` when the sender closes cleanly,
 * or `{"bytes":N,"ok":false,"error":"…"}` at the first wrong byte or a reset.
 */
import { createConnection, createServer } from 'node:net';

const MOD = 251;

function serve(port: number): void {
  const server = createServer((socket) => {
    let expected = 0;
    let bytes = 0;
    let done = false;
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      process.stdout.write(`${JSON.stringify({ bytes, ok, ...(error !== undefined ? { error } : {}) })}\n`);
      socket.destroy();
      server.close();
    };
    socket.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== expected) {
          finish(false, `byte ${bytes + i} is ${chunk[i]}, expected ${expected}`);
          return;
        }
        expected = (expected + 1) % MOD;
      }
      bytes += chunk.length;
    });
    socket.on('end', () => finish(true));
    socket.on('error', (err) => finish(false, err.message));
  });
  server.listen(port, () => process.stdout.write('listening\n'));
}

function send(host: string, port: number, kbps: number): void {
  const socket = createConnection({ host, port });
  socket.setNoDelay(true);
  let next = 0;
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((kbps * 1000) / 8 / (1000 / tickMs)));
  const timer = setInterval(() => {
    if (socket.writableLength > 1 << 20) return; // the path is stalled: do not queue without bound
    const b = Buffer.allocUnsafe(perTick);
    for (let i = 0; i < perTick; i++) {
      b[i] = next;
      next = (next + 1) % MOD;
    }
    socket.write(b);
  }, tickMs);
  socket.on('error', (err) => {
    clearInterval(timer);
    process.stderr.write(`stream error: ${err.message}\n`);
    process.exitCode = 1;
  });
  process.on('SIGTERM', () => {
    clearInterval(timer);
    socket.end(() => process.exit(process.exitCode ?? 0));
  });
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve' && a !== undefined) serve(Number(a));
else if (mode === 'send' && a !== undefined && b !== undefined) send(a, Number(b), Number(c ?? '800'));
else {
  process.stderr.write('usage: stream-check.ts serve PORT | send HOST PORT KBPS\n');
  process.exit(2);
}
