/**
 * Patterns in one process: N workers on loopback (or another local address),
 * each with its own listener and real TCP connections, for tests and a quick
 * look at a pattern's round times without VMs.
 */
import type { PatternKind } from '../topology/patterns.ts';
import { PatternsListener } from './listener.ts';
import type { PatternsReport } from './report.ts';
import { runWorker, type PatternsComponents } from './worker.ts';

export interface LocalPatternsInit {
  readonly pattern: PatternKind;
  readonly workers: number;
  readonly k?: number;
  readonly messageBytes: number;
  readonly rounds: number;
  /** Address every worker listens on, each on a port of its own (default 127.0.0.1). */
  readonly host?: string;
  readonly connectTimeoutMs?: number;
  readonly roundTimeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly onRound?: (r: { readonly worker: number; readonly round: number; readonly ms: number }) => void;
}

export interface LocalPatternsResult {
  /** One report per worker, by index. */
  readonly reports: readonly PatternsReport[];
  /** Worker 0's report: the run's round times. */
  readonly coordinator: PatternsReport;
}

/** Run all workers; rejects with the failure that started it (not the aborts it caused) if any worker fails. */
export async function runLocalPatterns(components: PatternsComponents, init: LocalPatternsInit): Promise<LocalPatternsResult> {
  const host = init.host ?? '127.0.0.1';
  const listeners: PatternsListener[] = [];
  try {
    for (let i = 0; i < init.workers; i++) listeners.push(await PatternsListener.open({ host, port: 0 }));
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }
  const peers = listeners.map((l) => ({ host, port: l.port }));
  const settled = await Promise.allSettled(
    listeners.map((listener, index) =>
      runWorker(components, {
        index,
        peers,
        listener,
        pattern: init.pattern,
        messageBytes: init.messageBytes,
        rounds: init.rounds,
        ...(init.k !== undefined ? { k: init.k } : {}),
        ...(init.connectTimeoutMs !== undefined ? { connectTimeoutMs: init.connectTimeoutMs } : {}),
        ...(init.roundTimeoutMs !== undefined ? { roundTimeoutMs: init.roundTimeoutMs } : {}),
        ...(init.signal !== undefined ? { signal: init.signal } : {}),
        ...(init.onRound !== undefined ? { onRound: (r: { round: number; ms: number }) => init.onRound?.({ worker: index, ...r }) } : {}),
      }),
    ),
  );
  const errors = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
  if (errors.length > 0) {
    const code = (e: unknown): unknown => (e as { code?: unknown } | null)?.code;
    throw errors.find((e) => code(e) !== 'VNET_ERR_PATTERNS_PEER_ABORTED' && code(e) !== 'VNET_ERR_PATTERNS_PEER_VANISHED') ?? errors[0];
  }
  const reports = settled.map((s) => (s as PromiseFulfilledResult<PatternsReport>).value);
  return { reports, coordinator: reports[0]! };
}
