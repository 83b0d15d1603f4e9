/**
 * A child process holding one anonymous private mapping of an exact size,
 * filled with seeded random bytes, for the RAM digest's tests and bench
 * (src/host/qemu-ram-digest.ts): the shape QEMU gives a guest's RAM.
 *
 * The child (python3 with ctypes) maps the size plus a PROT_NONE guard page
 * on each side, so its rw-p mapping never merges with a neighbour and is
 * exactly `bytes` long in /proc/PID/maps; it prints `ADDRESS SIZE`, then
 * answers `poke OFFSET VALUE` lines (one byte written) with `ok`, and exits
 * at the end of its stdin. The test process may read the child's memory as
 * its parent (same uid; Yama's ptrace_scope 0 or 1, or no Yama) or as root.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { RamMapping } from '../../src/host/qemu-ram-digest.ts';
import { waitFor } from './wait.ts';

const CHILD = String.raw`
import ctypes, mmap, random, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
size, seed, page = int(sys.argv[1]), int(sys.argv[2]), mmap.PAGESIZE
base = libc.mmap(None, size + 2 * page, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
if base is None or base == ctypes.c_void_p(-1).value:
    sys.exit('mmap failed: errno %d' % ctypes.get_errno())
addr = base + page
if libc.mprotect(addr, size, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
    sys.exit('mprotect failed: errno %d' % ctypes.get_errno())
block = random.Random(seed).randbytes(min(size, 1 << 20))
for off in range(0, size, len(block)):
    ctypes.memmove(addr + off, block, min(len(block), size - off))
print('%x %d' % (addr, size), flush=True)
for line in sys.stdin:
    cmd, off, val = line.split()
    ctypes.memset(addr + int(off), int(val), 1)
    print('ok', flush=True)
`;

export interface MemoryChild {
  readonly pid: number;
  /** The filled mapping (exactly the asked size); a PROT_NONE page lies on each side. */
  readonly mapping: RamMapping;
  /** Write one byte at `offset` in the mapping; resolves once the child has. */
  poke(offset: number, value: number): Promise<void>;
  close(): Promise<void>;
}

/** Start the child with a mapping of `bytes` (a whole number of pages) filled from `seed` (1 MiB of random bytes, repeated). */
export async function startMemoryChild(bytes: number, seed: number, timeoutMs = 60_000): Promise<MemoryChild> {
  const child: ChildProcessWithoutNullStreams = spawn('python3', ['-c', CHILD, String(bytes), String(seed)], { stdio: 'pipe' });
  const lines: string[] = [];
  let stderr = '';
  let exited: string | undefined;
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.on('error', (err) => { exited = `could not start python3: ${err.message}`; });
  child.on('exit', (code, signal) => { exited ??= `exited (${code ?? signal})`; });
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  const said = (): string => `the memory child ${exited ?? 'running'}; stderr: ${stderr.trim() || '(none)'}`;
  const first = await waitFor(() => {
    if (exited !== undefined) throw new Error(said());
    return lines.shift();
  }, () => `the memory child's mapping (${said()})`, timeoutMs);
  const [addr, size] = first.split(' ');
  const start = parseInt(addr ?? '', 16);
  if (!Number.isSafeInteger(start) || Number(size) !== bytes) throw new Error(`the memory child said "${first}"`);
  return {
    pid: child.pid!,
    mapping: { start, end: start + bytes },
    async poke(offset: number, value: number): Promise<void> {
      child.stdin.write(`poke ${offset} ${value}\n`);
      await waitFor(() => {
        if (exited !== undefined) throw new Error(said());
        return lines.shift() === 'ok';
      }, () => `the memory child's ok for poke ${offset} (${said()})`, timeoutMs);
    },
    async close(): Promise<void> {
      if (exited !== undefined) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await gone;
    },
  };
}
