/**
 * One migration, source side: the VM leaves this host.
 *
 *   starting ──dial ok──▶ running ──engine pauses the guest──▶ paused ──engine done──▶ sent
 *      │                    │                                     │                     │
 *      └──fail──▶ failed ◀──┘ (guest never stopped:         fail  ▼                     │
 *                             it runs on)                      stalled                  │
 *                                                                 │                     │
 *               migrate-commit (paused, sent, stalled) ──▶ released: held frames onto the
 *                                                          link to the destination, port removed
 *                                                          (a QEMU VM: reported before its QEMU
 *                                                          quits and the port goes)
 *               migrate-abort  (any but released)      ──▶ aborted: held frames to the port,
 *                                                          the guest runs here again
 *
 * Reports: progress (throttled), paused, then released / aborted; failed
 * before the pause, stalled after it. Once paused, the guest resumes here
 * only on abort: the engine's own resume on failure is refused by the
 * CutoverGuest, so a killed destination leaves it paused (`stalled`) until
 * the controller's verdict. A commit may come before the engine has seen the
 * destination's ack (the destination reported `ready` first): it releases at
 * once and the engine's late result is ignored.
 *
 * What each state reports is source-report.ts's; the commit's letting go of
 * the VM (attachment, held frames, runtime, port), source-hand-over.ts's.
 */
import type { Duplex } from 'node:stream';
import type { TimerHandle } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import { parseMac } from '../common/mac.ts';
import type { MigrateStart, MigrationCommand, MigrationProgress, MigrationReport } from '../control/migration-control.ts';
import { sendMigration } from '../migration/drivers/socket-migration.ts';
import type { ProgressEvent } from '../migration/engine/progress.ts';
import { channelsFor, createStopRule } from '../migration/stop-rules/create-stop-rule.ts';
import { reportOf, type AgentContext } from './agent-context.ts';
import { CutoverGuest } from './cutover-guest.ts';
import { MigrationInternalError, MigrationStateError } from './errors.ts';
import { dialMigrationChannels } from './migration-channel.ts';
import type { HoldStats } from './migration-daemon.ts';
import { dropVm, flushToDestination, handOffAttachment, handOffPortOf, qemuReclaim } from './source-hand-over.ts';
import { PAUSED_STATES, sourceReport, toWireProgress, type SourceState } from './source-report.ts';
import type { VmRuntime } from './vm-runtime.ts';
import type { HandOffResult } from '../dataplane/tap-port.ts';
import type { StopRule } from '../migration/stop-rules/stop-rule.ts';
import { sendQemuMigration } from './qemu-migration-send.ts';
import type { QemuVm } from './qemu-vm.ts';

/** The source's log line once it let go of the VM at the commit (`flushedAtMs`: the held frames onto the link, wall clock). */
export const SOURCE_RELEASED_LOG = 'migration committed: released';

/**
 * Fault injection (tests only): with VNET_FAULT_QEMU_HOLD_DELAY_MS=N (1–1000)
 * in its environment a source holds a QEMU VM's port N ms after QEMU's
 * `pre-switchover` instead of at once, so that frames reach the stopped
 * QEMU — what the commit's flush must reclaim (port-outlet.ts). It says so
 * in a warning.
 */
export const QEMU_HOLD_DELAY_FAULT_ENV = 'VNET_FAULT_QEMU_HOLD_DELAY_MS';

function qemuHoldDelayFault(ctx: AgentContext): number | undefined {
  const raw = process.env[QEMU_HOLD_DELAY_FAULT_ENV];
  if (raw === undefined) return undefined;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 1 || ms > 1000) return undefined;
  ctx.log.warn({ hook: QEMU_HOLD_DELAY_FAULT_ENV, delayMs: ms }, 'fault injection: the port is held late at the pause');
  return ms;
}

export class SourceMigration {
  readonly role = 'source' as const;
  readonly id: string;
  readonly command: MigrateStart;
  readonly #ctx: AgentContext;
  readonly #runtime: VmRuntime | undefined;
  readonly #cancel = new AbortController();
  #state: SourceState = 'starting';
  #guest: CutoverGuest | undefined;
  #sockets: Duplex[] = [];
  #progress: MigrationProgress | undefined;
  #error: VnetError | undefined;
  #hold: HoldStats | undefined;
  /** A QEMU guest's STOP (wall clock, ms): frames delivered to its port since are reclaimed at the commit. */
  #reclaimSinceMs: number | undefined;
  /** Frames read back from a stopped QEMU's TAP device at the commit (qemu-unread.ts). */
  #unread: number | undefined;
  /** The hold the fault hook QEMU_HOLD_DELAY_FAULT_ENV put off (tests only). */
  #lateHold: TimerHandle | undefined;
  #handOff: HandOffResult | undefined;
  /** The commit is under way (hand-over, release): its `released` report is on the way. */
  #lettingGo = false;
  /** The cutover's steps here (wall clock): the pause, the final copy handed to the channel. */
  readonly #timing: { pausedAt?: number; finalSentAt?: number } = {};
  /** When the held frames went onto the link to the destination at the commit (wall clock, ms; logged). */
  #flushedAtMs: number | undefined;

  /** `runtime` is undefined for a start refused at once (`fail`). */
  constructor(ctx: AgentContext, command: MigrateStart, runtime: VmRuntime | undefined) {
    this.#ctx = ctx;
    this.id = command.id;
    this.command = command;
    this.#runtime = runtime;
  }

  get state(): SourceState {
    return this.#state;
  }

  get port(): string {
    return this.command.vm.port;
  }

  /** Whether this migration still has a claim on the VM. */
  get active(): boolean {
    return this.#state !== 'released' && this.#state !== 'failed' && this.#state !== 'aborted';
  }

  /** Begin: dial the destination and run the engine. Never throws; the outcome is reported. */
  start(): void {
    this.#run().catch((err: unknown) => this.#engineFailed(new MigrationInternalError(`source migration: ${String(err)}`, { cause: err })));
  }

  /** Fail before anything started (a refused start). */
  fail(err: VnetError): void {
    this.#state = 'failed';
    this.#error = err;
    this.report();
  }

  handle(command: MigrationCommand): void {
    switch (command.type) {
      case 'migrate-start':
      case 'migrate-query':
        this.report();
        return;
      case 'migrate-commit':
        this.#commit();
        return;
      case 'migrate-abort':
        this.#abort(command.reason);
        return;
      case 'migrate-prepare':
        return;
    }
  }

  /** Say where the migration stands (again). */
  report(extra?: VnetError): void {
    if (this.#lettingGo) return;
    this.#ctx.emit(this.#currentReport(extra));
  }

  /** The agent is closing: stop the engine; a paused guest stays paused. */
  close(): void {
    this.#cancel.abort();
    for (const s of this.#sockets) s.destroy();
  }

  #currentReport(extra?: VnetError): MigrationReport {
    return sourceReport({
      id: this.id, state: this.#state, progress: this.#progress, timing: this.#timing, hold: this.#hold, error: this.#error,
      relayed: () => this.#ctx.daemon.relayedFrames(parseMac(this.command.vm.mac)),
    }, extra);
  }

  async #run(): Promise<void> {
    const ctx = this.#ctx;
    const command = this.command;
    const runtime = this.#runtime;
    if (ctx.unavailable !== undefined || ctx.credentials === undefined || runtime === undefined) {
      this.fail(ctx.unavailable ?? new MigrationInternalError('no TLS credentials or no VM'));
      return;
    }
    const rule = createStopRule(command.rule, { deadlineMs: command.deadlineMs });
    const qemu = runtime.qemu;
    // What the guest ran lazily since it was last looked at, in slices now, not in the engine's first step.
    await runtime.catchUp?.(this.#cancel.signal);
    const dial = await dialMigrationChannels({
      ...ctx.credentials,
      host: command.address.host,
      port: command.address.port,
      id: this.id,
      to: command.to,
      // QEMU's own migration is one stream; the second channel carries the stopped guest's RAM digest.
      count: qemu !== undefined ? 2 : channelsFor(rule),
      clock: ctx.clock,
      timeoutMs: ctx.settings.channelTimeoutMs,
      signal: this.#cancel.signal,
    });
    if (!dial.ok) {
      if (this.#state === 'starting') this.#engineFailed(dial.error);
      return;
    }
    this.#sockets = dial.sockets;
    if (this.state !== 'starting') { this.#closeSockets(); return; }
    this.#state = 'running';
    ctx.log.info({ id: this.id, port: this.port, to: command.to, rule: command.rule, qemu: qemu !== undefined }, 'migration started: sending');
    if (qemu !== undefined) {
      await this.#runQemu(qemu, rule, dial.sockets[0]!, dial.sockets[1]!);
      return;
    }
    this.#guest = new CutoverGuest(runtime.guest, {
      beforePause: () => this.#holdPort(),
      afterPause: () => this.#onPaused(),
    });
    const result = await sendMigration({
      guest: this.#guest,
      rule,
      channels: dial.sockets,
      clock: ctx.clock,
      signal: this.#cancel.signal,
      timeoutMs: ctx.settings.engineTimeoutMs,
      progressEveryMs: ctx.settings.progressEveryMs,
      onProgress: (e) => this.#onProgress(e),
      onFinalSent: () => { this.#timing.finalSentAt = Math.round(ctx.clock.wallNow()); },
      logger: ctx.log,
      ...(runtime.diskImage !== undefined ? { diskImage: runtime.diskImage } : {}),
    });
    this.#closeSockets();
    if (result.ok) {
      if ((this.state as SourceState) === 'paused') this.#state = 'sent';
      ctx.log.info({
        id: this.id, totalMs: Math.round(result.totalMs), downtimeMs: Math.round(result.downtimeMs), bytes: result.bytes.total, diskBytes: result.bytes.disk,
        ...(result.sender.diskImage !== undefined ? { imageChunks: result.sender.diskImage.chunks } : {}),
      }, 'migration sent and verified; waiting for the verdict');
      return;
    }
    this.#engineFailed(result.error ?? new MigrationInternalError('the engine failed without an error'));
  }

  /** QEMU's own migration over the channel; the pause is QEMU's pre-switchover stop. */
  async #runQemu(vm: QemuVm, rule: StopRule, channel: Duplex, ramChannel: Duplex): Promise<void> {
    const ctx = this.#ctx;
    // QEMU stops the guest on its own; what reaches its port before the hold is reclaimed at the commit.
    this.#watchDeliveries(true);
    const result = await sendQemuMigration({
      vm, id: this.id, channel, ramChannel, rule, clock: ctx.clock, signal: this.#cancel.signal,
      timeoutMs: ctx.settings.engineTimeoutMs, progressEveryMs: ctx.settings.progressEveryMs, log: ctx.log,
      onProgress: (p) => {
        this.#progress = p;
        if (this.#state === 'running') ctx.emit(reportOf(this.id, 'progress', { progress: p }));
      },
      onPause: (stoppedAtMs) => {
        this.#reclaimSinceMs = stoppedAtMs;
        const late = qemuHoldDelayFault(ctx);
        if (late === undefined) this.#holdPort();
        else this.#lateHold = ctx.clock.setTimeout(() => { this.#lateHold = undefined; this.#holdPort(); }, late);
        // QEMU stopped the guest itself: a QMP `stop` here would only queue ahead of migrate-continue.
        this.#onPaused(false);
      },
    });
    this.#closeSockets();
    if (result.ok) {
      if ((this.state as SourceState) === 'paused') this.#state = 'sent';
      return;
    }
    // Not paused (failed, or aborted before the pause): the guest runs on here and took what it was given.
    // Paused: the verdict's release ends the watch (an abort's reclaims nothing, a commit's what the guest never took).
    if (!PAUSED_STATES.has(this.#state)) this.#watchDeliveries(false);
    this.#engineFailed(result.error);
  }

  /** The fault hook's late hold, if still to come, now: a verdict's release must find the port held. */
  #holdNowIfLate(): void {
    if (this.#lateHold === undefined) return;
    this.#lateHold.cancel();
    this.#lateHold = undefined;
    this.#holdPort();
  }

  #watchDeliveries(on: boolean): void {
    try {
      if (on) this.#ctx.daemon.watchDeliveries(this.port);
      else this.#ctx.daemon.unwatchDeliveries(this.port);
    } catch (err) {
      this.#ctx.log.warn({ id: this.id, port: this.port, err: String(err) }, 'cannot watch the port\'s deliveries');
    }
  }

  #engineFailed(err: VnetError): void {
    if (this.#state === 'starting' || this.#state === 'running') {
      this.#state = 'failed';
      this.#error = err;
      this.#ctx.log.warn({ id: this.id, code: err.code, detail: err.message }, 'migration failed before the pause; the VM runs on here');
      this.report();
    } else if (this.#state === 'paused') {
      this.#state = 'stalled';
      this.#error = err;
      this.#ctx.log.warn({ id: this.id, code: err.code, detail: err.message }, 'migration failed after the pause; the VM stays paused until the verdict');
      this.report();
    }
    // Already released or aborted: the verdict came first; nothing to change.
  }

  #holdPort(): void {
    try {
      this.#ctx.daemon.holdPort(this.port);
    } catch (err) {
      this.#ctx.log.warn({ id: this.id, port: this.port, err: String(err) }, 'cannot hold the port at the pause');
    }
  }

  /** `stopRuntime`: pause the VM's runtime too (false: it stopped on its own, QEMU at the switchover). */
  #onPaused(stopRuntime = true): void {
    if (this.#state !== 'running') return;
    this.#state = 'paused';
    this.#timing.pausedAt = Math.round(this.#ctx.clock.wallNow());
    if (stopRuntime) this.#runtime?.pause().catch((err: unknown) => this.#ctx.log.warn({ id: this.id, err: String(err) }, 'VM runtime pause failed'));
    // The report first: the controller's clock for the cutover starts with it.
    this.report();
    this.#ctx.log.info({ id: this.id, port: this.port }, 'guest paused; frames to it held');
  }

  #onProgress(e: ProgressEvent): void {
    this.#progress = toWireProgress(e);
    if (this.#state === 'running') this.#ctx.emit(reportOf(this.id, 'progress', { progress: this.#progress }));
  }

  #commit(): void {
    if (this.#state === 'released') { this.report(); return; }
    if (!PAUSED_STATES.has(this.#state)) { this.report(new MigrationStateError('migrate-commit', this.#state)); return; }
    this.#state = 'released';
    this.#lettingGo = true;
    this.#ctx.removeVm(this.port);
    // A QEMU stopped at the switchover never runs again unless told to: its quit (and the port's removal) need not delay the destination.
    const dropLater = this.#runtime?.qemu !== undefined;
    const warn = (what: string) => (err: unknown): void => this.#ctx.log.warn({ id: this.id, err: String(err) }, what);
    this.#handOver().then(() => (dropLater ? undefined : this.#drop())).catch(warn('letting go of the VM failed')).finally(() => {
      this.#lettingGo = false;
      this.#ctx.log.info({ id: this.id, port: this.port, to: this.command.to, ...this.#hold, ...(this.#handOff ?? {}), unread: this.#unread, flushedAtMs: this.#flushedAtMs }, SOURCE_RELEASED_LOG);
      this.report();
      if (dropLater) this.#drop().catch(warn('removing the migrated QEMU VM failed'));
    });
  }

  /**
   * The commit's hand-over (source-hand-over.ts): the TAP attachment handed
   * to the destination's queue, the held frames onto the link to it. The
   * `released` report waits for it and for `#drop`, so the destination,
   * committed after it, owns the VM's only attachment — except for a QEMU
   * VM, whose `released` follows the hand-over: its attachment (its own
   * stream socket or TAP device) is apart from the destination's, its guest
   * is stopped for good, and this host's rules (acknowledged before the
   * commit reached it) already send what still comes for the VM on to the
   * destination.
   */
  async #handOver(): Promise<void> {
    this.#holdNowIfLate();
    const port = handOffPortOf(this.#ctx, this.port);
    if (port !== undefined) this.#handOff = await handOffAttachment(this.#ctx, this.id, port);
    const qemu = this.#runtime?.qemu;
    const reclaim = qemu === undefined ? undefined : qemuReclaim(this.#ctx, this.id, qemu, this.#reclaimSinceMs);
    this.#unread = reclaim?.unread?.length;
    const flushed = flushToDestination(this.#ctx, this.id, this.port, this.command.to, reclaim);
    this.#hold = flushed.hold;
    this.#flushedAtMs = flushed.flushedAtMs;
  }

  async #drop(): Promise<void> {
    await dropVm(this.#ctx, this.id, this.#runtime, this.port, this.command.to);
  }

  #abort(reason: string | undefined): void {
    if (this.#state === 'aborted') { this.report(); return; }
    if (this.#state === 'released') { this.report(new MigrationStateError('migrate-abort', this.#state)); return; }
    const wasPaused = PAUSED_STATES.has(this.#state);
    this.#state = 'aborted';
    this.#cancel.abort();
    this.#ctx.log.info({ id: this.id, port: this.port, reason, paused: wasPaused }, 'migration aborted; the VM runs here');
    if (!wasPaused) { this.report(); return; }
    this.#guest?.allowResume();
    this.#holdNowIfLate();
    try {
      this.#hold = this.#ctx.daemon.releasePort(this.port, 'port');
    } catch (err) {
      this.#ctx.log.warn({ id: this.id, err: String(err) }, 'cannot release the held frames to the port');
    }
    (this.#runtime?.resume() ?? Promise.resolve()).then(
      () => this.report(),
      (err: unknown) => this.report(new MigrationInternalError(`the VM did not resume: ${String(err)}`, { cause: err })),
    );
  }

  #closeSockets(): void {
    for (const s of this.#sockets) s.end();
    const sockets = this.#sockets;
    this.#ctx.clock.setTimeout(() => { for (const s of sockets) s.destroy(); }, 1000);
  }
}
