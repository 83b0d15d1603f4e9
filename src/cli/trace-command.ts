import { Command, InvalidArgumentError, Option } from 'commander';
import { createRootLogger } from '../common/logger.ts';
import { VnetError } from '../common/errors.ts';
import { GUEST_WORKLOADS, MIN_MEMORY_MIB, recordGuestTrace } from '../migration/qemu/qemu-guest-recorder.ts';
import { loadTrace } from '../migration/qemu/trace-format.ts';
import { computeTraceStats, formatTraceStats } from '../migration/qemu/trace-stats.ts';

function intIn(min: number, max: number): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got "${v}"`);
    return n;
  };
}

function fail(err: unknown): void {
  if (err instanceof VnetError) console.error(`vnet trace: ${err.code}: ${err.message}`);
  else console.error(`vnet trace: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}

/**
 * `vnet trace record`: boot the busybox guest under QEMU/TCG, run a workload,
 * save its RAM every interval into a trace file.
 * `vnet trace stats`: zero/duplicate page shares, dirty rate, delta sizes of a trace.
 */
export function traceCommand(): Command {
  const trace = new Command('trace').description('record real guest memory traces (QEMU/TCG) and report their redundancy and change figures');

  trace
    .command('record')
    .description('boot the trace guest, run a workload, and record RAM snapshots (QMP stop/pmemsave/cont) into a trace file')
    .addOption(new Option('-w, --workload <name>', 'workload inside the guest').choices([...GUEST_WORKLOADS]).makeOptionMandatory())
    .requiredOption('-o, --out <file>', 'trace file to write')
    .option('-m, --memory <MiB>', 'guest RAM in MiB', intIn(MIN_MEMORY_MIB, 1024), 128)
    .option('-n, --snapshots <n>', 'number of snapshots', intIn(1, 10_000), 21)
    .option('-i, --interval <ms>', 'guest running time between snapshots (ms)', intIn(0, 3_600_000), 250)
    .option('--warmup <ms>', 'guest running time from workload start to the first snapshot (ms)', intIn(0, 3_600_000), 2000)
    .option('--boot-timeout <ms>', 'deadline from QEMU start to the workload start (ms)', intIn(1000, 3_600_000), 60_000)
    .option('--qemu <binary>', 'QEMU binary', 'qemu-system-x86_64')
    .action(async (o: { workload: string; out: string; memory: number; snapshots: number; interval: number; warmup: number; bootTimeout: number; qemu: string }) => {
      const logger = createRootLogger();
      const ac = new AbortController();
      const onSignal = (): void => ac.abort(new Error('interrupted'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const r = await recordGuestTrace({
          workload: o.workload,
          out: o.out,
          memoryMiB: o.memory,
          snapshots: o.snapshots,
          intervalMs: o.interval,
          warmupMs: o.warmup,
          bootTimeoutMs: o.bootTimeout,
          qemuBinary: o.qemu,
          logger,
          signal: ac.signal,
          onSnapshot: (s) => console.log(`snapshot ${s.index + 1}/${s.of}  t=${(s.tMs / 1000).toFixed(2)} s  changed ${s.changedPages} pages  record ${(s.recordBytes / 1024).toFixed(0)} KiB`),
        });
        console.log(`wrote ${r.path}: ${r.snapshots} snapshots of ${r.pageCount} pages, ${(r.fileBytes / 2 ** 20).toFixed(1)} MiB; boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.wallMs / 1000).toFixed(1)} s`);
      } catch (err) {
        fail(err);
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });

  trace
    .command('stats')
    .description('zero-page and duplicate-page shares, dirty rate and delta sizes of a trace')
    .argument('<file>', 'trace file')
    .option('--json', 'print the figures as JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      try {
        const st = computeTraceStats(await loadTrace(file));
        console.log(o.json ? JSON.stringify(st, (_k, v: unknown) => (typeof v === 'number' && Number.isNaN(v) ? null : v), 2) : formatTraceStats(st));
      } catch (err) {
        fail(err);
      }
    });

  return trace;
}
