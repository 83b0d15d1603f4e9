import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../common/clock.ts';
import { realClock } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import { componentLogger, silentLogger } from '../../common/logger.ts';
import { QmpClient } from './qmp-client.ts';
import { QemuProcess } from './qemu-process.ts';
import { GuestImageError, QemuProcessError, RecordingAbortedError } from '../errors.ts';
import { diffMemory, TraceWriter, type TraceMeta } from './trace-format.ts';

/**
 * Records a trace of a real Linux guest's RAM.
 *
 *   image    scripts/guest-build.sh → guest/out/initramfs.cpio.gz (busybox,
 *            init, workloads); the kernel is the Debian one in /boot
 *   boot     qemu-system-x86_64 -accel tcg -m N -nographic, no network, no disk,
 *            QMP on a Unix socket in a private temp dir; the console (ttyS0 on
 *            QEMU's stdout) is watched for the marker "VNET_WORKLOAD_START"
 *   warm up  the workload runs `warmupMs` before the first snapshot
 *   dump     per snapshot: QMP stop → pmemsave(0, N MiB) → read the file →
 *            diff against the previous image → append to the trace → cont.
 *            The guest is paused while it is dumped, so every snapshot is one
 *            instant of guest memory (under MTTCG the vCPU thread would
 *            otherwise write while QEMU copies); the paused time is not guest
 *            time (the guest's clocks stop with the VM), so the trace's
 *            timestamps count guest running time only, and between snapshots
 *            the guest runs `intervalMs` undisturbed by the host-side work.
 *   stop     QMP quit, then SIGKILL if QEMU has not exited within 5 s; always,
 *            also on error, on abort, and if this process exits first.
 */

export const GUEST_WORKLOADS = ['idle', 'compile', 'memwrite'] as const;
export type GuestWorkload = (typeof GUEST_WORKLOADS)[number];

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const WORKLOAD_MARKER = 'VNET_WORKLOAD_START';
const MiB = 1 << 20;
const PAGE_SIZE = 4096;
/** Below this the Debian kernel dies at boot ("System is deadlocked on memory" at 80 MiB). */
export const MIN_MEMORY_MIB = 96;

export interface GuestImage {
  readonly kernel: string;
  readonly initramfs: string;
}

export interface RecordTraceOptions {
  readonly workload: string;
  /** The trace file to write. */
  readonly out: string;
  /** Guest RAM in MiB, 96–1024 (default 128). The Debian kernel panics out of memory below ~96 MiB; memwrite wants 128. */
  readonly memoryMiB?: number;
  /** Number of snapshots (default 21, at least 1). */
  readonly snapshots?: number;
  /**
   * Guest running time between snapshots, ms (default 250). Shorter is truer:
   * a page changed several times between two snapshots counts once, so the
   * compile workload shows 582 pages/s at 1 s and 1562 pages/s at 250 ms.
   */
  readonly intervalMs?: number;
  /** Guest running time between the workload's start and snapshot 0, ms (default 2000). */
  readonly warmupMs?: number;
  /** Deadline from QEMU's start to the workload marker, ms (default 60000). */
  readonly bootTimeoutMs?: number;
  readonly image?: GuestImage;
  readonly qemuBinary?: string;
  /** DEFLATE level of the trace records (default 6). */
  readonly compressionLevel?: number;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly signal?: AbortSignal;
  /** Called once QEMU is spawned, with its pid. */
  readonly onQemuStart?: (pid: number | undefined) => void;
  readonly onSnapshot?: (s: { index: number; of: number; tMs: number; changedPages: number; recordBytes: number }) => void;
}

export interface RecordTraceResult {
  readonly path: string;
  readonly meta: TraceMeta;
  readonly pageCount: number;
  readonly snapshots: number;
  readonly fileBytes: number;
  /** Wall time from QEMU's start to the workload marker. */
  readonly bootMs: number;
  /** Wall time of the whole recording. */
  readonly wallMs: number;
  /** QEMU's pid (it has exited when the promise resolves). */
  readonly qemuPid: number | undefined;
}

/** Build the initramfs if it is missing or stale (scripts/guest-build.sh) and return the image paths. */
export async function ensureGuestImage(init: { root?: string; logger?: Logger; signal?: AbortSignal } = {}): Promise<GuestImage> {
  const root = init.root ?? REPO_ROOT;
  const script = join(root, 'scripts', 'guest-build.sh');
  const out = await runScript(script, init.signal);
  if (out.code !== 0) throw new GuestImageError(`${script} failed (exit ${out.code}): ${out.stderr.trim() || out.stdout.trim()}`);
  const initramfs = /^initramfs (\S+)/m.exec(out.stdout)?.[1];
  const kernel = /^kernel (\S+)/m.exec(out.stdout)?.[1];
  if (initramfs === undefined || kernel === undefined) throw new GuestImageError(`${script} did not name the kernel and initramfs: ${out.stdout.trim()}`);
  for (const f of [kernel, initramfs]) {
    try {
      await access(f);
    } catch (err) {
      throw new GuestImageError(`${f} is not readable`, { cause: err });
    }
  }
  (init.logger ?? silentLogger()).debug({ kernel, initramfs }, 'guest image ready');
  return { kernel, initramfs };
}

/** The QEMU command line (pure; tests and the CLI print it). */
export function qemuArgs(o: { image: GuestImage; memoryMiB: number; workload: string; qmpSocket: string }): string[] {
  return [
    '-accel', 'tcg',
    '-m', `${o.memoryMiB}M`,
    '-smp', '1',
    '-nographic', '-nodefaults', '-no-user-config',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-nic', 'none',
    '-no-reboot',
    '-kernel', o.image.kernel,
    '-initrd', o.image.initramfs,
    '-append', `console=ttyS0 quiet panic=-1 vnet.workload=${o.workload}`,
    '-qmp', `unix:${o.qmpSocket},server=on,wait=off`,
    '-name', `vnet-trace-${o.workload}`,
  ];
}

export async function recordGuestTrace(opts: RecordTraceOptions): Promise<RecordTraceResult> {
  const log = componentLogger(opts.logger ?? silentLogger(), 'trace-recorder', { workload: opts.workload });
  const clock = opts.clock ?? realClock;
  const memoryMiB = opts.memoryMiB ?? 128;
  const count = opts.snapshots ?? 21;
  const intervalMs = opts.intervalMs ?? 250;
  const warmupMs = opts.warmupMs ?? 2000;
  const bootTimeoutMs = opts.bootTimeoutMs ?? 60_000;
  if (!(GUEST_WORKLOADS as readonly string[]).includes(opts.workload)) throw new RangeError(`unknown workload "${opts.workload}" (known: ${GUEST_WORKLOADS.join(', ')})`);
  if (!Number.isInteger(memoryMiB) || memoryMiB < MIN_MEMORY_MIB || memoryMiB > 1024) throw new RangeError(`memoryMiB ${memoryMiB} is not an integer in [${MIN_MEMORY_MIB}, 1024]`);
  if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new RangeError(`snapshots ${count} is not an integer in [1, 10000]`);
  if (!(intervalMs >= 0) || !(warmupMs >= 0)) throw new RangeError('intervalMs and warmupMs must be non-negative');
  if (opts.signal?.aborted) throw new RecordingAbortedError({ cause: opts.signal.reason });

  const t0 = clock.now();
  const image = opts.image ?? (await ensureGuestImage({ logger: log, ...(opts.signal ? { signal: opts.signal } : {}) }));
  const dir = await mkdtemp(join(tmpdir(), 'vnet-trace-'));
  const qmpSocket = join(dir, 'qmp.sock');
  const dumpFile = join(dir, 'ram.bin');
  const bytes = memoryMiB * MiB;
  // Written under a temporary name and renamed when finished: a *.trace file is always whole.
  const partial = `${opts.out}.partial`;
  const vm = new QemuProcess(opts.qemuBinary ?? 'qemu-system-x86_64', qemuArgs({ image, memoryMiB, workload: opts.workload, qmpSocket }), log);
  let writer: TraceWriter | undefined;
  let qmp: QmpClient | undefined;
  const onAbort = (): void => vm.kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    vm.start();
    opts.onQemuStart?.(vm.pid);
    const deadline = t0 + bootTimeoutMs;
    qmp = await connectWithRetry(qmpSocket, vm, clock, deadline, log, opts.signal);
    const status = await qmp.execute<{ status: string }>('query-status');
    log.debug({ status: status.status }, 'QEMU up');
    await vm.waitForConsole(WORKLOAD_MARKER, deadline - clock.now(), bootTimeoutMs);
    const bootMs = clock.now() - t0;
    log.info({ workload: opts.workload, bootMs: Math.round(bootMs) }, 'guest workload started');
    const v = qmp.greeting.version;
    const meta: TraceMeta = {
      workload: opts.workload,
      kernel: basename(image.kernel),
      memoryMiB,
      intervalMs,
      recordedAt: new Date().toISOString(),
      qemu: `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro} ${v.package}`.trim(),
      note: `qemu-system-x86_64 -accel tcg -smp 1, busybox initramfs; snapshots by QMP stop/pmemsave/cont after ${warmupMs} ms warm-up; tMs is guest running time`,
    };
    writer = await TraceWriter.create(partial, { pageSize: PAGE_SIZE, pageCount: bytes / PAGE_SIZE, meta }, { level: opts.compressionLevel ?? 6 });
    let prev: Uint8Array | undefined;
    let running = 0;
    let resumedAt = clock.now();
    await sleep(clock, warmupMs, opts.signal, vm);
    for (let i = 0; i < count; i++) {
      if (i > 0) await sleep(clock, Math.max(0, intervalMs - (clock.now() - resumedAt)), opts.signal, vm);
      await qmp.execute('stop');
      const stoppedAt = clock.now();
      if (i > 0) running += stoppedAt - resumedAt;
      await qmp.execute('pmemsave', { val: 0, size: bytes, filename: dumpFile }, { timeoutMs: 60_000 });
      const ram = await readFile(dumpFile);
      if (ram.length !== bytes) throw new QemuProcessError(`pmemsave wrote ${ram.length} bytes, expected ${bytes}`, vm.outputTail());
      const { pages, data } = diffMemory(prev, ram, PAGE_SIZE);
      const recordBytes = await writer.append({ tMs: running, pages, data });
      prev = ram;
      opts.onSnapshot?.({ index: i, of: count, tMs: running, changedPages: pages.length, recordBytes });
      log.debug({ snapshot: i, tMs: Math.round(running), changedPages: pages.length, recordBytes }, 'snapshot');
      await qmp.execute('cont');
      resumedAt = clock.now();
    }
    await writer.close();
    writer = undefined;
    await rename(partial, opts.out);
    const fileBytes = (await stat(opts.out)).size;
    return { path: opts.out, meta, pageCount: bytes / PAGE_SIZE, snapshots: count, fileBytes, bootMs, wallMs: clock.now() - t0, qemuPid: vm.pid };
  } catch (err) {
    if (opts.signal?.aborted) throw new RecordingAbortedError({ cause: err });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (writer !== undefined) {
      await writer.close(true).catch(() => {});
      await rm(partial, { force: true });
    }
    await vm.stop(qmp);
    await qmp?.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

export async function connectWithRetry(path: string, vm: QemuProcess, clock: Clock, deadline: number, log: Logger, signal: AbortSignal | undefined): Promise<QmpClient> {
  for (let attempt = 0; ; attempt++) {
    vm.checkAlive();
    if (signal?.aborted) throw new RecordingAbortedError({ cause: signal.reason });
    try {
      return await QmpClient.connect(path, { logger: log, timeoutMs: 10_000 });
    } catch (err) {
      if (clock.now() > deadline) throw new QemuProcessError(`QMP socket ${path} did not answer before the boot deadline`, vm.outputTail(), { cause: err });
      await sleep(clock, Math.min(200, 10 * (attempt + 1)), signal, vm);
    }
  }
}

/** Wait `ms` on the clock; fails early if QEMU exits or the signal aborts. */
function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined, vm: QemuProcess): Promise<void> {
  vm.checkAlive();
  return new Promise<void>((resolve, reject) => {
    const finish = (err: Error | undefined): void => {
      h.cancel();
      signal?.removeEventListener('abort', onAbort);
      offExit();
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      try {
        vm.checkAlive();
      } catch (err) {
        finish(err as Error);
      }
    };
    const onAbort = (): void => finish(new RecordingAbortedError({ cause: signal?.reason }));
    // The clock's timers may not hold the event loop open; the QEMU child does, until it exits.
    const offExit = vm.onChange(check);
    const h = clock.setTimeout(() => {
      check();
      finish(undefined);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function runScript(script: string, signal: AbortSignal | undefined): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('sh', [script], { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new GuestImageError(`cannot run ${script}: ${err.message}`, { cause: err })));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
  });
}
