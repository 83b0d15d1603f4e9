import type { MigrationReport } from '../control/migration-control.ts';
import { decision, type Planned } from './effects.ts';
import { cloneRun, MigrationPass } from './migration-pass.ts';
import { emptySpans, withMeasured, withTiming, type MeasuredCutover } from './migration-spans.ts';
import {
  FINAL_STEPS, PRE_COMMIT_STEPS, type MigrationRun, type MigrationStep, type MigrationTimeouts,
} from './migration-run.ts';
import type { LinkRecord, VmRecord } from './store/records.ts';

/**
 * The migration coordinator: the controller's side of a live migration
 * (docs/control-protocol.md, "Migration"), a pure planner like the others —
 * its state, one input and `now` in; the next state and the effects (store
 * writes, events, messages to the two daemons, logs, a reconcile) out.
 *
 *   start ─▶ prepare: link source↔destination, migrate-prepare ─▶ destination
 *   prepared + link up ─▶ transfer: migrate-start ─▶ source; progress reports
 *   paused ─▶ paused ─▶ ready (destination) ─▶ COMMIT POINT, written durably,
 *     with the VM's location = destination (reconcile re-points every daemon)
 *   every connected daemon runs those rules ─▶ cutover: migrate-commit ─▶ source, then (released) destination
 *   resumed + released ─▶ cleanup ─▶ (grace) link removed ─▶ done
 *
 * Exactly one copy runs. migrate-commit never leaves before the commit point
 * is in the store (it is written in an earlier pass: the applier performs
 * the writes of a pass before its messages, and the commit is sent only in
 * a later pass, once the daemons acknowledged the new rules). Before the
 * commit point every failure — a `failed`/`aborted`/`unknown` report, a
 * timeout, a cancel, a controller restart — becomes an abort: migrate-abort
 * to the destination first, to the source once the destination answered (or
 * is away, or did not answer in time); both re-sent until answered and when
 * a daemon comes back. A lost report is settled with migrate-query to both
 * sides: a destination that answers `ready` is committed, one that does not
 * know the migration (or failed) is aborted. A source that `stalled` after
 * the pause gets the same treatment: commit if the destination is ready,
 * abort both otherwise. After the commit point nothing is aborted: the
 * cutover is driven again (commit re-sent, idempotent) until both answer.
 */

export interface CoordinatorState {
  readonly runs: ReadonlyMap<string, MigrationRun>;
}

export const INITIAL_COORDINATOR: CoordinatorState = { runs: new Map() };

/** What the coordinator reads of the world (the store, the session table), as of the call. */
export interface CoordinatorWorld {
  /** Hosts with a connected daemon. */
  connected: ReadonlySet<string>;
  /** Whether the connected daemon of `host` runs the desired rules version (acknowledged or reported). */
  rulesConverged(host: string): boolean;
  /** Whether a daemon reports a link between a and b (fast-path or backbone) up. */
  linkUp(a: string, b: string): boolean;
  /** Desired links (every kind). */
  links: readonly LinkRecord[];
  vm(mac: string): VmRecord | undefined;
  /** What the driver measured of a run's commit (the store's answer, the push, each daemon's ack): taken into its spans as it leaves the commit step. */
  measured?(id: string): MeasuredCutover | undefined;
}

/** What starting a migration takes: the run's identity and request, before any step. */
export type StartMigration = Pick<MigrationRun, 'id' | 'vm' | 'from' | 'to' | 'rule' | 'deadlineMs' | 'requestedBy'>;

export type CoordinatorInput =
  | { type: 'start'; migration: StartMigration }
  | { type: 'report'; host: string; report: MigrationReport }
  | { type: 'connected'; host: string }
  | { type: 'cancel'; id: string; actor: string }
  /** Time passed, acks or link facts arrived: timeouts and waiting steps are looked at. */
  | { type: 'tick' };

/** Finished runs are forgotten this long after their end (the store keeps them). */
const FORGET_AFTER_MS = 3_600_000;

export function planMigrations(state: CoordinatorState, input: CoordinatorInput, world: CoordinatorWorld, timeouts: Readonly<MigrationTimeouts>, nowMs: number): Planned<CoordinatorState> {
  const pass = new Pass(state, world, timeouts, nowMs);
  switch (input.type) {
    case 'start': pass.start(input.migration); break;
    case 'report': pass.report(input.host, input.report); break;
    case 'connected': pass.connected(input.host); break;
    case 'cancel': pass.cancel(input.id, input.actor); break;
    case 'tick': break;
  }
  return pass.finish();
}

/**
 * A restarted controller's coordinator, from the runs the store holds open:
 * before the commit point → aborted (migrate-abort to both, sent as the
 * daemons come back); after it → the cutover is driven again (rules acked,
 * migrate-commit re-sent); an abort or a cleanup in progress goes on.
 */
export function restoreMigrations(runs: readonly MigrationRun[], world: CoordinatorWorld, timeouts: Readonly<MigrationTimeouts>, nowMs: number): Planned<CoordinatorState> {
  const pass = new Pass({ runs: new Map(runs.map((r) => [r.id, r] as const)) }, world, timeouts, nowMs);
  for (const r of runs) pass.restored(r.id);
  return pass.finish();
}


class Pass extends MigrationPass {
  // ---- inputs ----------------------------------------------------------------

  start(m: StartMigration): void {
    const now = this.now;
    const run: MigrationRun = {
      id: m.id, vm: { ...m.vm }, from: m.from, to: m.to, rule: m.rule, deadlineMs: m.deadlineMs, requestedBy: m.requestedBy,
      startedMs: now, step: 'prepare', stepMs: now, heardMs: now, address: null, linkOwner: 'migration', progress: null,
      pausedMs: null, readyMs: null, commitMs: null, acknowledgedMs: null, resumedMs: null, releasedMs: null,
      commitSentMs: { dest: null, source: null }, destStats: null, sourceStats: null, query: null, abort: null,
      cleanupAtMs: null, finishedMs: null, error: null, spans: emptySpans(),
    };
    run.linkOwner = this.takeLink(run);
    this.setVm(run.vm.mac, run.from, 'migrating');
    this.put(run);
    this.row(run, 'prepare', 'sent', { rule: run.rule, deadlineMs: run.deadlineMs, link: run.linkOwner, requestedBy: run.requestedBy });
    this.send(run.to, { type: 'migrate-prepare', id: run.id, vm: { ...run.vm }, from: run.from });
    this.effects.events.push(decision('migration-started', `migration ${run.id}: ${this.vmName(run)} ${run.from}→${run.to} (${run.rule}), requested by ${run.requestedBy}`, {
      id: run.id, vm: run.vm.mac, from: run.from, to: run.to, rule: run.rule, requestedBy: run.requestedBy,
    }));
    this.log('info', run, 'migration started: migrate-prepare sent to the destination');
  }

  report(host: string, r: MigrationReport): void {
    const found = this.runs.get(r.id);
    if (found === undefined) {
      this.effects.logs.push({ level: 'debug', fields: { host, id: r.id, state: r.state }, msg: 'migration report for a migration the coordinator does not run' });
      return;
    }
    const side = host === found.to ? 'dest' : host === found.from ? 'source' : undefined;
    if (side === undefined) {
      this.effects.logs.push({ level: 'warn', fields: { host, id: r.id, state: r.state }, msg: 'migration report from a host that is neither end of the migration' });
      return;
    }
    const run = cloneRun(found);
    if (side === 'source') run.heardMs = this.now;
    if (r.timing !== undefined) run.spans = withTiming(run.spans ?? emptySpans(), r.timing);
    const why = r.error !== undefined ? `${r.error.code}: ${r.error.message}` : undefined;
    if (run.step === 'aborting' || run.step === 'aborted') {
      if (run.abort === null) return;
      const settled = r.state === 'aborted' || r.state === 'unknown' || r.state === 'failed';
      if (side === 'dest' && settled && !run.abort.destDone) {
        run.abort.destDone = true;
        this.row(run, 'aborted', 'destination', { state: r.state });
      } else if (side === 'source' && settled && !run.abort.sourceDone) {
        run.abort.sourceDone = true;
        this.row(run, 'aborted', 'source', { state: r.state });
      } else if (side === 'source' && r.state === 'stalled' && run.abort.sourceSentMs !== null) {
        run.abort.sourceSentMs = null; // it waits for its verdict: tell it again
      }
      this.put(run);
      return;
    }
    if (PRE_COMMIT_STEPS.has(run.step)) {
      this.#preCommitReport(run, side, r, why);
      return;
    }
    if (run.step === 'commit' || run.step === 'cutover') {
      if (side === 'dest' && r.state === 'resumed' && run.resumedMs === null) {
        run.resumedMs = this.now;
        run.destStats = r.stats ?? null;
        this.row(run, 'resumed', 'ok', { stats: r.stats ?? null });
      } else if (side === 'source' && r.state === 'released' && run.releasedMs === null) {
        run.releasedMs = this.now;
        run.sourceStats = r.stats ?? null;
        this.row(run, 'released', 'ok', { stats: r.stats ?? null });
      } else if ((side === 'dest' && (r.state === 'failed' || r.state === 'unknown')) || (side === 'source' && r.state === 'unknown')) {
        // Past the commit point nothing is aborted: the operator has to look.
        run.error = `${side === 'dest' ? 'destination' : 'source'} ${host} reported ${r.state} after the commit point${why !== undefined ? ` (${why})` : ''}`;
        this.row(run, 'error', r.state, { host, error: r.error ?? null });
        this.log('error', run, `migration: ${run.error}`);
      } else if (side === 'source' && (r.state === 'stalled' || r.state === 'paused')) {
        run.commitSentMs.source = null; // it waits for the verdict: commit again
      }
      if (run.resumedMs !== null && run.releasedMs !== null) this.#finish(run);
      this.put(run);
    }
  }

  #preCommitReport(run: MigrationRun, side: 'dest' | 'source', r: MigrationReport, why: string | undefined): void {
    const who = side === 'dest' ? `destination ${run.to}` : `source ${run.from}`;
    if (run.query !== null) run.query[side] = true;
    switch (r.state) {
      case 'prepared':
        if (side !== 'dest') break;
        if (r.address === undefined) { this.#abort(run, `${who} reported prepared without its channel address`, 'failed'); return; }
        if (run.address === null) this.row(run, 'prepared', 'ok', { address: r.address });
        run.address = { host: r.address.host, port: r.address.port };
        if (run.query?.why === 'source stalled') { this.#abort(run, `source ${run.from} stalled after the pause and the destination is not ready`, 'failed'); return; }
        break;
      case 'progress':
        if (side === 'dest') {
          if (run.query?.why === 'source stalled') { this.#abort(run, `source ${run.from} stalled after the pause and the destination is not ready`, 'failed'); return; }
          break;
        }
        if (r.progress !== undefined) {
          if (run.progress === null || run.progress.phase !== r.progress.phase) this.row(run, 'phase', r.progress.phase, { iteration: r.progress.iteration, bytesSent: r.progress.bytesSent });
          run.progress = { ...r.progress };
        }
        break;
      case 'paused':
        if (side !== 'source' || run.step === 'prepare') break;
        if (run.step !== 'paused') {
          run.step = 'paused';
          run.stepMs = this.now;
          run.pausedMs = this.now;
          if (r.progress !== undefined) run.progress = { ...r.progress };
          this.row(run, 'paused', 'ok', { progress: r.progress ?? null });
        }
        break;
      case 'ready':
        if (side !== 'dest' || run.step === 'prepare') break;
        this.#commit(run);
        return;
      case 'stalled':
        if (side !== 'source') { this.#abort(run, `${who} reported stalled`, 'failed'); return; }
        this.row(run, 'stalled', 'source', { error: r.error ?? null });
        if (run.step === 'transfer') { run.step = 'paused'; run.stepMs = this.now; run.pausedMs ??= this.now; }
        run.query = { sentMs: this.now, why: 'source stalled', dest: false, source: true };
        this.send(run.to, { type: 'migrate-query', id: run.id, reason: 'the source stalled after the pause' });
        this.log('warn', run, 'migration: the source stalled after the pause; asking the destination whether its copy is ready');
        break;
      case 'failed': case 'aborted': case 'unknown':
        if (side === 'source' && run.step === 'prepare') break;
        this.#abort(run, `${who} reported ${r.state}${why !== undefined ? ` (${why})` : ''}`, 'failed');
        return;
      default:
        break;
    }
    // Both sides answered a query and neither settled it: the migration goes on.
    if (run.query !== null && run.query.dest && run.query.source && run.query.why !== 'source stalled') {
      this.row(run, 'query', 'answered', { why: run.query.why });
      run.query = null;
      // Paused and not ready yet: another readyMs before the next query.
      if (run.step === 'paused') run.stepMs = this.now;
    }
    this.put(run);
  }

  connected(host: string): void {
    for (const found of this.runs.values()) {
      if (found.to !== host && found.from !== host) continue;
      const run = cloneRun(found);
      const side = host === run.to ? 'dest' : 'source';
      if (PRE_COMMIT_STEPS.has(run.step)) {
        // Reports may have been lost while it was away: ask both where they stand.
        this.#query(run, `${side === 'dest' ? 'destination' : 'source'} ${host} reconnected`);
      } else if (run.abort !== null && run.step === 'aborting') {
        // Re-sent to it now (driveAbort), the destination first.
        if (side === 'dest' && !run.abort.destDone) run.abort.destSentMs = null;
        else if (side === 'source' && !run.abort.sourceDone && run.abort.sourceSentMs !== null) run.abort.sourceSentMs = null;
        else continue;
      } else if (run.abort !== null && run.step === 'aborted' && side === 'dest' && !run.abort.destDone) {
        // Ended while the destination was away: it hears the verdict now.
        this.send(run.to, { type: 'migrate-abort', id: run.id, reason: run.abort.reason });
        run.abort.destSentMs = this.now;
      } else if (run.step === 'cutover' || run.step === 'commit') {
        if (side === 'dest' && run.resumedMs === null) run.commitSentMs.dest = null;
        if (side === 'source' && run.releasedMs === null) run.commitSentMs.source = null;
        // It is sent the cutover rules now; the commit follows its ack (or the ack timeout from here).
        run.stepMs = this.now;
      } else {
        continue;
      }
      this.put(run);
    }
  }

  cancel(id: string, actor: string): void {
    const found = this.runs.get(id);
    if (found === undefined || !PRE_COMMIT_STEPS.has(found.step)) return; // checked by the caller (checkCancel)
    this.#abort(cloneRun(found), `cancelled by ${actor}`, 'cancelled');
  }

  restored(id: string): void {
    const run = cloneRun(this.runs.get(id)!);
    if (PRE_COMMIT_STEPS.has(run.step)) {
      this.#abort(run, 'the controller restarted before the commit point', 'failed');
      return;
    }
    if (run.step === 'commit' || run.step === 'cutover') {
      // Drive the cutover again: the location is the destination's already (written with the commit point).
      run.step = 'commit';
      run.stepMs = this.now;
      run.commitSentMs = { dest: null, source: null };
      this.row(run, 'restart', 'redrive', {});
      this.committed.add(run.id);
      this.effects.reconcile ??= `migration ${run.id}: cutover driven again after a restart`;
      this.log('info', run, 'migration past its commit point at restart: driving the cutover again');
    } else if (run.abort !== null && run.step === 'aborting') {
      if (!run.abort.destDone) run.abort.destSentMs = null;
      if (!run.abort.sourceDone && run.abort.sourceSentMs !== null) run.abort.sourceSentMs = null;
    }
    this.put(run);
  }

  // ---- the steps ---------------------------------------------------------------

  /** Every run that is not final: timeouts, and the steps that wait on the world. */
  protected advance(): void {
    for (const [id, found] of this.runs) {
      if (FINAL_STEPS.has(found.step)) {
        const keep = found.step === 'aborted' && found.abort !== null && !found.abort.destDone;
        if (!keep && found.finishedMs !== null && this.now - found.finishedMs > FORGET_AFTER_MS) this.runs.delete(id);
        continue;
      }
      if (this.committed.has(id)) continue;
      const before = this.changed.has(id);
      const run = cloneRun(found);
      if (this.#advanceRun(run) || before) this.put(run);
    }
  }

  /** Returns whether the run changed. */
  #advanceRun(run: MigrationRun): boolean {
    const now = this.now;
    const t = this.t;
    const connected = this.world.connected;
    switch (run.step) {
      case 'prepare': {
        if (run.address !== null && this.world.linkUp(run.from, run.to) && connected.has(run.from)) {
          run.step = 'transfer';
          run.stepMs = now;
          run.heardMs = now;
          run.query = null;
          this.send(run.from, {
            type: 'migrate-start', id: run.id, vm: { ...run.vm }, to: run.to, address: { ...run.address }, rule: run.rule,
            ...(run.deadlineMs !== null ? { deadlineMs: run.deadlineMs } : {}),
          });
          this.row(run, 'start', 'sent', { address: run.address, rule: run.rule });
          this.log('info', run, 'migration: destination prepared and link up; migrate-start sent to the source');
          return true;
        }
        if (run.query !== null && now - run.query.sentMs > t.queryMs) return this.#abort(run, `no answer to migrate-query (${run.query.why}) in ${t.queryMs} ms`, 'failed');
        if (now - run.stepMs > t.prepareMs) {
          const what = run.address === null ? `destination ${run.to} not prepared` : `link ${run.from}–${run.to} not up`;
          return this.#abort(run, `${what} after ${t.prepareMs} ms`, 'failed');
        }
        return false;
      }
      case 'transfer':
        if (run.query !== null && now - run.query.sentMs > t.queryMs) return this.#abort(run, `no answer to migrate-query (${run.query.why}) in ${t.queryMs} ms`, 'failed');
        if (now - run.heardMs > t.progressMs) return this.#abort(run, `no progress from source ${run.from} for ${t.progressMs} ms`, 'failed');
        return false;
      case 'paused':
        if (run.query !== null) {
          if (now - run.query.sentMs > t.queryMs) return this.#abort(run, `no ready destination after migrate-query (${run.query.why}) in ${t.queryMs} ms`, 'failed');
          return false;
        }
        if (now - run.stepMs > t.readyMs) {
          this.#query(run, `no ready from destination ${run.to} ${t.readyMs} ms after the pause`);
          return true;
        }
        return false;
      case 'commit': {
        const lagging = [...connected].filter((h) => !this.world.rulesConverged(h)).sort();
        if (lagging.length > 0 && now - run.stepMs <= t.ackMs) return false;
        run.acknowledgedMs ??= now;
        run.spans = withMeasured(run.spans ?? emptySpans(), this.world.measured?.(run.id));
        run.step = 'cutover';
        run.stepMs = now;
        if (lagging.length === 0) this.row(run, 'acknowledged', 'ok', { hosts: [...connected].sort() });
        else {
          this.row(run, 'acknowledged', 'timeout', { lagging });
          this.log('warn', run, `migration: ${lagging.join(', ')} did not acknowledge the cutover rules in ${t.ackMs} ms; committing anyway`);
        }
        this.#sendCommits(run);
        return true;
      }
      case 'cutover':
        return this.#sendCommits(run);
      case 'cleanup':
        if (run.cleanupAtMs !== null && now < run.cleanupAtMs) return false;
        this.releaseLink(run);
        run.step = 'done';
        run.stepMs = now;
        this.row(run, 'cleanup', 'ok', { link: run.linkOwner });
        return true;
      case 'aborting':
        return this.#driveAbort(run);
      default:
        return false;
    }
  }

  /**
   * migrate-commit to each side that has not answered, re-sent after
   * resendMs: the source first, the destination once the source has
   * released (flushed what it held, so those frames reach the VM before any
   * that came straight to the destination, and the source's port is gone
   * before the destination announces the VM) — or once the source has been
   * away for resendMs (since the step began: a restarted controller, or a
   * daemon reconnecting, resets it, so a source that is merely not back
   * yet is waited for) or has not answered for resendMs: past the commit
   * point the source never runs the VM again, so the destination need not
   * wait for it longer.
   */
  #sendCommits(run: MigrationRun): boolean {
    let sent = false;
    const sourceLast = run.commitSentMs.source;
    const sourceAway = !this.world.connected.has(run.from) && this.now - run.stepMs >= this.t.resendMs;
    const sourceSettled = run.releasedMs !== null || sourceAway || (sourceLast !== null && this.now - sourceLast >= this.t.resendMs);
    const sides = [['source', run.from, run.releasedMs], ['dest', run.to, run.resumedMs]] as const;
    for (const [side, host, answered] of sides) {
      if (answered !== null || !this.world.connected.has(host)) continue;
      if (side === 'dest' && !sourceSettled) continue;
      const last = run.commitSentMs[side];
      if (last !== null && this.now - last < this.t.resendMs) continue;
      // A daemon that came back runs the cutover rules before it hears the verdict (or the wait times out).
      if (last === null && !this.world.rulesConverged(host) && this.now - run.stepMs <= this.t.ackMs) continue;
      this.send(host, { type: 'migrate-commit', id: run.id, reason: 'commit point recorded; rules acknowledged' });
      if (last === null) this.row(run, 'commit-sent', side === 'dest' ? 'destination' : 'source', { host });
      run.commitSentMs[side] = this.now;
      sent = true;
    }
    return sent;
  }

  #driveAbort(run: MigrationRun): boolean {
    const a = run.abort;
    if (a === null) return false;
    const now = this.now;
    const connected = this.world.connected;
    let changed = false;
    if (!a.destDone && connected.has(run.to) && (a.destSentMs === null || now - a.destSentMs >= this.t.resendMs)) {
      this.send(run.to, { type: 'migrate-abort', id: run.id, reason: a.reason });
      a.destSentMs = now;
      changed = true;
    }
    const destSettled = a.destDone || !connected.has(run.to) || now - a.atMs > this.t.abortWaitMs;
    if (!a.sourceDone && destSettled && connected.has(run.from) && (a.sourceSentMs === null || now - a.sourceSentMs >= this.t.resendMs)) {
      this.send(run.from, { type: 'migrate-abort', id: run.id, reason: a.reason });
      if (a.sourceSentMs === null) this.row(run, 'abort', 'source', {});
      a.sourceSentMs = now;
      changed = true;
    }
    if (a.sourceDone && (a.destDone || !connected.has(run.to))) {
      run.step = 'aborted';
      run.stepMs = now;
      run.finishedMs = now;
      this.releaseLink(run);
      this.row(run, 'aborted', a.outcome, { reason: a.reason, destinationConfirmed: a.destDone });
      this.log('info', run, `migration aborted: the VM runs on the source (${a.reason})`);
      changed = true;
    }
    return changed;
  }

  /** Before the commit point: abort, the destination first. Returns true (the run changed). */
  #abort(run: MigrationRun, reason: string, outcome: 'failed' | 'cancelled'): true {
    run.abort = { reason, outcome, atMs: this.now, destSentMs: null, sourceSentMs: null, destDone: false, sourceDone: false };
    run.step = 'aborting';
    run.stepMs = this.now;
    run.query = null;
    run.error = reason;
    this.setVm(run.vm.mac, run.from, 'running');
    this.row(run, 'abort', outcome, { reason });
    this.log(outcome === 'cancelled' ? 'info' : 'warn', run, `migration aborted before the commit point: ${reason}`);
    this.#driveAbort(run);
    this.put(run);
    return true;
  }

  /** The destination's copy is ready: the commit point, durably, with the VM's new location. */
  #commit(run: MigrationRun): void {
    const now = this.now;
    run.readyMs = now;
    this.row(run, 'ready', 'ok', {});
    run.step = 'commit';
    run.stepMs = now;
    run.commitMs = now;
    run.pausedMs ??= now;
    run.query = null;
    this.setVm(run.vm.mac, run.to, 'migrating');
    this.row(run, 'commit', 'ok', { location: run.to });
    this.durable.add(run.id);
    this.committed.add(run.id);
    this.effects.reconcile ??= `migration ${run.id} cutover: ${run.vm.mac} on ${run.to}`;
    this.log('info', run, 'migration commit point recorded: the VM is the destination\'s; re-pointing every daemon');
    this.put(run);
  }

  #finish(run: MigrationRun): void {
    run.step = 'cleanup';
    run.stepMs = this.now;
    run.finishedMs = this.now;
    run.cleanupAtMs = this.now + this.t.cleanupGraceMs;
    this.setVm(run.vm.mac, run.to, 'running');
    this.row(run, 'done', run.error === null ? 'ok' : 'error', { cutoverMs: run.acknowledgedMs !== null && run.pausedMs !== null ? run.acknowledgedMs - run.pausedMs : null });
    this.log('info', run, 'migration done: resumed on the destination, released on the source');
  }

  /** migrate-query to both sides (to the destination only before migrate-start: the source knows nothing yet). */
  #query(run: MigrationRun, why: string): void {
    const started = run.step !== 'prepare';
    run.query = { sentMs: this.now, why, dest: false, source: !started };
    this.send(run.to, { type: 'migrate-query', id: run.id, reason: why });
    if (started) this.send(run.from, { type: 'migrate-query', id: run.id, reason: why });
    this.row(run, 'query', 'sent', { why });
  }

}

/** Steps whose order a run goes through (for tests and documentation). */
export const STEP_ORDER: readonly MigrationStep[] = ['prepare', 'transfer', 'paused', 'commit', 'cutover', 'cleanup', 'done'];
