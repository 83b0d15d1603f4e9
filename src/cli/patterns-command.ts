import { Command, InvalidArgumentError, Option } from 'commander';
import { VnetError } from '../common/errors.ts';
import { createRootLogger } from '../common/logger.ts';
import type { PeerAddress } from '../patterns/listener.ts';
import { hostPortArg } from './cli-options.ts';
import { runLocalPatterns } from '../patterns/local-run.ts';
import type { PatternsReport } from '../patterns/report.ts';
import { MAX_MESSAGE_BYTES } from '../patterns/wire.ts';
import { runWorker } from '../patterns/worker.ts';
import { PATTERN_KINDS, type PatternKind } from '../topology/patterns.ts';

function intIn(min: number, max: number): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got "${v}"`);
    return n;
  };
}

/** `65536`, `64k`, `64KiB`, `1M`, `1MiB` → bytes. */
function parseSize(v: string): number {
  const m = /^(\d+)\s*(k|K|KiB|m|M|MiB)?$/.exec(v.trim());
  if (m === null) throw new InvalidArgumentError(`expected a size like 65536, 64KiB or 1MiB, got "${v}"`);
  const n = Number(m[1]) * (m[2] === undefined ? 1 : /^k/i.test(m[2]) ? 1024 : 1024 * 1024);
  if (n > MAX_MESSAGE_BYTES) throw new InvalidArgumentError(`at most ${MAX_MESSAGE_BYTES} bytes, got "${v}"`);
  return n;
}

function parseAddress(v: string): PeerAddress {
  const a = hostPortArg(v);
  if (a.port === 0) throw new InvalidArgumentError(`expected HOST:PORT with a port, got "${v}"`);
  return a;
}

function parsePeers(v: string): PeerAddress[] {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length < 2) throw new InvalidArgumentError(`expected at least two HOST:PORT, comma-separated, got "${v}"`);
  return list.map(parseAddress);
}

function fail(err: unknown): void {
  if (err instanceof VnetError) console.error(`vnet patterns: ${err.code}: ${err.message}`);
  else console.error(`vnet patterns: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}

const ms = (x: number): string => `${x.toFixed(3)} ms`;
const mbps = (bytesPerSecond: number): string => `${((bytesPerSecond * 8) / 1e6).toFixed(1)} Mbit/s`;

function formatSummary(r: PatternsReport): string {
  const s = r.summary;
  return [
    `${r.pattern} on ${r.workers} workers, ${r.messageBytes} B messages, ${r.rounds} rounds (worker ${r.index}, degree ${r.neighbours.length})`,
    `round time  mean ${ms(s.meanMs)}  median ${ms(s.medianMs)}  p95 ${ms(s.p95Ms)}  min ${ms(s.minMs)}  max ${ms(s.maxMs)}`,
    `total ${ms(s.totalMs)}  set-up ${ms(r.setupMs)}  aggregate ${mbps(r.throughput.aggregateBytesPerSecond)}  this worker ${mbps(r.throughput.workerBytesPerSecond)}`,
    `messages sent ${r.sentMessages}  received ${r.receivedMessages}`,
  ].join('\n');
}

function formatRounds(r: PatternsReport): string {
  return r.roundMs.map((t, i) => `round ${String(i + 1).padStart(4)}  ${ms(t)}`).join('\n');
}

/** Stop the run on SIGINT/SIGTERM; returns the signal and a detach function. */
function interruptible(): { signal: AbortSignal; detach: () => void } {
  const ac = new AbortController();
  const on = (): void => ac.abort(new Error('interrupted'));
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return {
    signal: ac.signal,
    detach: () => {
      process.removeListener('SIGINT', on);
      process.removeListener('SIGTERM', on);
    },
  };
}

interface CommonOptions {
  pattern: PatternKind;
  size: number;
  rounds: number;
  k?: number;
  connectTimeout: number;
  roundTimeout: number;
  json?: boolean;
}

function addCommon(c: Command): Command {
  return c
    .addOption(new Option('-p, --pattern <kind>', 'communication pattern').choices([...PATTERN_KINDS]).makeOptionMandatory())
    .option('-s, --size <bytes>', 'message size (65536, 64KiB, 1MiB)', parseSize, 65_536)
    .option('-r, --rounds <n>', 'number of rounds', intIn(1, 0x7fff_ffff), 50)
    .option('-k, --k <width>', 'width of the neighbour pattern', intIn(1, 255))
    .option('--connect-timeout <ms>', 'deadline for connecting to all neighbours', intIn(1, 3_600_000), 30_000)
    .option('--round-timeout <ms>', 'deadline for each round (exchange and barrier)', intIn(1, 3_600_000), 60_000)
    .option('--json', 'print the report as JSON');
}

/**
 * `vnet patterns worker`: one Patterns process (one per VM).
 * `vnet patterns run`: N workers in this process on loopback.
 */
export function patternsCommand(): Command {
  const patterns = new Command('patterns').description('the Patterns benchmark: N processes exchange messages in a pattern, round by round, with a barrier per round');

  addCommon(
    patterns
      .command('worker')
      .description('run one worker: listen on its address, connect to its pattern neighbours, run the rounds; worker 0 prints the round times')
      .requiredOption('-i, --index <i>', "this worker's index into --peers", intIn(0, 65_534))
      .requiredOption('--peers <list>', 'every worker\'s HOST:PORT, comma-separated, by index', parsePeers)
      .option('--listen <host:port>', 'listen here instead of on this worker\'s --peers address', parseAddress),
  ).action(async (o: CommonOptions & { index: number; peers: PeerAddress[]; listen?: PeerAddress }) => {
    const { signal, detach } = interruptible();
    try {
      const r = await runWorker(
        { logger: createRootLogger() },
        {
          index: o.index,
          peers: o.peers,
          pattern: o.pattern,
          messageBytes: o.size,
          rounds: o.rounds,
          connectTimeoutMs: o.connectTimeout,
          roundTimeoutMs: o.roundTimeout,
          signal,
          ...(o.k !== undefined ? { k: o.k } : {}),
          ...(o.listen !== undefined ? { listen: o.listen } : {}),
        },
      );
      if (o.json) console.log(JSON.stringify(r));
      else if (r.index === 0) console.log(`${formatRounds(r)}\n${formatSummary(r)}`);
      else console.log(`worker ${r.index}: ${r.rounds} rounds done, sent ${r.sentMessages} and received ${r.receivedMessages} messages, mean round ${ms(r.summary.meanMs)}`);
    } catch (err) {
      fail(err);
    } finally {
      detach();
    }
  });

  addCommon(
    patterns
      .command('run')
      .description('run N workers in this process on loopback and print the round times')
      .requiredOption('-n, --vms <n>', 'number of workers', intIn(2, 1024))
      .option('--host <addr>', 'local address the workers listen on', '127.0.0.1')
      .option('--per-round', 'print every round\'s time'),
  ).action(async (o: CommonOptions & { vms: number; host: string; perRound?: boolean }) => {
    const { signal, detach } = interruptible();
    try {
      const r = await runLocalPatterns(
        { logger: createRootLogger() },
        {
          pattern: o.pattern,
          workers: o.vms,
          messageBytes: o.size,
          rounds: o.rounds,
          host: o.host,
          connectTimeoutMs: o.connectTimeout,
          roundTimeoutMs: o.roundTimeout,
          signal,
          ...(o.k !== undefined ? { k: o.k } : {}),
        },
      );
      if (o.json) {
        console.log(JSON.stringify({ reports: r.reports }));
      } else {
        if (o.perRound) console.log(formatRounds(r.coordinator));
        console.log(formatSummary(r.coordinator));
        console.log(`per worker (sent/received): ${r.reports.map((x) => `${x.index}:${x.sentMessages}/${x.receivedMessages}`).join(' ')}`);
      }
    } catch (err) {
      fail(err);
    } finally {
      detach();
    }
  });

  return patterns;
}
