/**
 * A continuous, checked TCP byte stream between two VMs, for the cutover
 * benchmark and tests: byte i of the stream is i mod 251, so a gap, a
 * duplicate or a corruption shows at the first wrong byte; a reset shows as
 * an error. Run inside the VMs' namespaces:
 *
 *   node --import tsx bench/cutover/stream-check.ts serve PORT          # prints one JSON line at the end
 *   node --import tsx bench/cutover/stream-check.ts send HOST PORT KBPS # sends until SIGTERM
 *   node --import tsx bench/cutover/stream-check.ts echo HOST PORT KBPS # the same against a TCP echo
 *                                                                      # service (a QEMU guest's port 7),
 *                                                                      # checking what comes back; SIGTERM
 *                                                                      # ends it and prints the verdict
 *
 * The server prints `{"bytes":N,"ok":true}` when the sender closes cleanly,
 * or `{"bytes":N,"ok":false,"error":"…"}` at the first wrong byte or a reset;
 * the echo's verdict also carries its longest silence, `"gap":{"ms","fromMs","toMs"}`
 * (wall clock, ms).
 */
import { createConnection, createServer } from 'node:net';

const MOD = 251;

function serve(port: number): void {
  const server = createServer((socket) => {
    const check = checker();
    let done = false;
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      process.stdout.write(`${JSON.stringify({ bytes: check.bytes, ok, ...(error !== undefined ? { error } : {}) })}\n`);
      socket.destroy();
      server.close();
    };
    socket.on('data', (chunk: Buffer) => {
      const error = check.push(chunk);
      if (error !== undefined) finish(false, error);
    });
    socket.on('end', () => finish(true));
    socket.on('error', (err) => finish(false, err.message));
  });
  server.listen(port, () => process.stdout.write('listening\n'));
}

/** Checks bytes against the stream's pattern; returns the first error, if any. */
function checker(): { push(chunk: Buffer): string | undefined; readonly bytes: number } {
  let expected = 0;
  let bytes = 0;
  return {
    push(chunk) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== expected) return `byte ${bytes + i} is ${chunk[i]}, expected ${expected}`;
        expected = (expected + 1) % MOD;
      }
      bytes += chunk.length;
      return undefined;
    },
    get bytes() { return bytes; },
  };
}

function send(host: string, port: number, kbps: number, echo = false): void {
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
  if (!echo) {
    process.on('SIGTERM', () => {
      clearInterval(timer);
      socket.end(() => process.exit(process.exitCode ?? 0));
    });
    return;
  }
  // Echo: what comes back must be the stream itself; the verdict once the echo ends after ours.
  // The longest silence of the echo (wall clock, ms): its edges go on the cutover's time line.
  const check = checker();
  let verdict: string | undefined;
  let lastAt: number | undefined;
  let gap = { ms: 0, fromMs: 0, toMs: 0 };
  const report = (ok: boolean, error?: string): void => {
    process.stdout.write(`${JSON.stringify({ bytes: check.bytes, ok, ...(error !== undefined ? { error } : {}), gap })}\n`);
    process.exit(0);
  };
  socket.on('data', (chunk: Buffer) => {
    const now = Date.now();
    if (lastAt !== undefined && now - lastAt > gap.ms) gap = { ms: now - lastAt, fromMs: lastAt, toMs: now };
    lastAt = now;
    verdict ??= check.push(chunk);
    if (verdict !== undefined) report(false, verdict);
  });
  socket.on('end', () => report(verdict === undefined && check.bytes === sentBytes(), verdict ?? (check.bytes === sentBytes() ? undefined : `echoed ${check.bytes} of ${sentBytes()} bytes`)));
  socket.on('error', (err) => report(false, err.message));
  const sentBytes = (): number => socket.bytesWritten;
  process.on('SIGTERM', () => {
    clearInterval(timer);
    socket.end();
    setTimeout(() => report(false, `the echo did not end within 20 s (echoed ${check.bytes} of ${sentBytes()} bytes)`), 20_000).unref();
  });
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve' && a !== undefined) serve(Number(a));
else if (mode === 'send' && a !== undefined && b !== undefined) send(a, Number(b), Number(c ?? '800'));
else if (mode === 'echo' && a !== undefined && b !== undefined) send(a, Number(b), Number(c ?? '800'), true);
else {
  process.stderr.write('usage: stream-check.ts serve PORT | send HOST PORT KBPS | echo HOST PORT KBPS\n');
  process.exit(2);
}
