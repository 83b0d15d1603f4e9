/**
 * One migration, destination side: the VM arrives on this host.
 *
 *   migrate-prepare ──▶ prepared: the VM's port added *held* (frames to it
 *        │              queued), the channel expecting `from` for this id
 *        ▼
 *   receiving ──verified──▶ ready (the copy does not run)
 *        │                    │
 *        └──fail──▶ failed    └──migrate-commit──▶ resumed: held frames to the
 *         (port removed)                           port, the guest resumed,
 *                                                  the VM announced
 *   migrate-abort (any but resumed) ──▶ aborted: the copy discarded, the port removed
 *
 * Only a commit makes the copy run, and a commit is refused before `ready`.
 */
import type { Duplex } from 'node:stream';
import type { VnetError } from '../common/errors.ts';
import type { CutoverStats, CutoverTiming, MigratePrepare, MigrationCommand, MigrationReport } from '../control/migration-control.ts';
import { receiveMigration } from '../migration/drivers/socket-migration.ts';
import type { Guest } from '../migration/guest.ts';
import { errorBody, reportOf, type AgentContext, type ArrivedDiskImage } from './agent-context.ts';
import { MigrationInternalError, MigrationPortError, MigrationStateError, MigrationUnavailableError, QemuRamLineError } from './errors.ts';
import type { ExpectedChannels } from './migration-channel.ts';
import type { HoldStats } from './migration-daemon.ts';
import { StreamPort } from '../dataplane/stream-port.ts';
import { PacketPort } from '../dataplane/packet-port.ts';
import { QEMU_READY_LOG, runIncomingQemu } from './qemu-cutover.ts';
import { receiveQemuMigration } from './qemu-migration-receive.ts';
import type { QemuVm } from './qemu-vm.ts';
import type { VmRuntime } from './vm-runtime.ts';

export type DestinationState = 'preparing' | 'prepared' | 'receiving' | 'ready' | 'resuming' | 'resumed' | 'failed' | 'aborted';

export class DestinationMigration {
  readonly role = 'destination' as const;
  readonly id: string;
  readonly command: MigratePrepare;
  readonly #ctx: AgentContext;
  readonly #cancel = new AbortController();
  #state: DestinationState = 'preparing';
  #expected: ExpectedChannels | undefined;
  #sockets: Duplex[] = [];
  #guest: Guest | undefined;
  #diskImage: ArrivedDiskImage | undefined;
  #qemuVm: QemuVm | undefined;
  #portAdded = false;
  #error: VnetError | undefined;
  #hold: HoldStats | undefined;
  #announced = 0;
  /** The cutover's steps here (wall clock): the copy applied and verified, the VM resumed. */
  readonly #timing: CutoverTiming = {};

  constructor(ctx: AgentContext, command: MigratePrepare) {
    this.#ctx = ctx;
    this.id = command.id;
    this.command = command;
  }

  get state(): DestinationState {
    return this.#state;
  }

  get port(): string {
    return this.command.vm.port;
  }

  get active(): boolean {
    return this.#state !== 'resumed' && this.#state !== 'failed' && this.#state !== 'aborted';
  }

  /** Create the held port, open the channel for this id, report `prepared`. Never throws. */
  prepare(): void {
    const ctx = this.#ctx;
    const vm = this.command.vm;
    if (ctx.unavailable !== undefined || ctx.channel === undefined) {
      this.#fail(ctx.unavailable ?? new MigrationUnavailableError('this host has no migration listener (migration: {host, port}, or listen)'));
      return;
    }
    if (ctx.daemon.port(vm.port) !== undefined || ctx.vm(vm.port) !== undefined) {
      this.#fail(new MigrationPortError(vm.port, 'a port of that name exists on this host'));
      return;
    }
    try {
      ctx.daemon.addPort(ctx.makePort(vm), vm.ip, { held: true });
      this.#portAdded = true;
    } catch (err) {
      this.#fail(new MigrationPortError(vm.port, `cannot add it held: ${String((err as Error).message ?? err)}`, { cause: err }));
      return;
    }
    try {
      this.#expected = ctx.channel.expect(this.id, this.command.from);
    } catch (err) {
      this.#fail(err as VnetError);
      return;
    }
    this.#state = 'prepared';
    ctx.log.info({ id: this.id, port: vm.port, from: this.command.from, address: ctx.channel.address }, 'migration prepared: port held, channel open');
    this.report();
    this.#receive().catch((err: unknown) => this.#receiveFailed(new MigrationInternalError(`destination migration: ${String(err)}`, { cause: err })));
  }

  handle(command: MigrationCommand): void {
    switch (command.type) {
      case 'migrate-prepare':
      case 'migrate-query':
        this.report();
        return;
      case 'migrate-commit':
        this.#commit();
        return;
      case 'migrate-abort':
        this.#abort(command.reason);
        return;
      case 'migrate-start':
        return;
    }
  }

  report(extra?: VnetError): void {
    if (this.#state === 'preparing' || this.#state === 'resuming') return; // its report is on the way
    this.#ctx.emit(this.#currentReport(extra));
  }

  close(): void {
    this.#cancel.abort();
    this.#expected?.cancel('the agent is closing');
    for (const s of this.#sockets) s.destroy();
    // An incoming QEMU not committed yet never runs: it goes with the agent.
    if (this.#state !== 'resumed' && this.#state !== 'resuming') void this.#qemuVm?.close();
  }

  #currentReport(extra?: VnetError): MigrationReport {
    const err = extra ?? this.#error;
    const error = err !== undefined ? { error: errorBody(err) } : {};
    const only = extra !== undefined ? { error: errorBody(extra) } : {};
    switch (this.#state) {
      case 'preparing':
      case 'prepared':
      case 'receiving':
        return reportOf(this.id, 'prepared', { ...(this.#ctx.channel !== undefined ? { address: this.#ctx.channel.address } : {}), ...only });
      case 'ready':
        return reportOf(this.id, 'ready', { timing: { ...this.#timing }, ...only });
      case 'resuming':
      case 'resumed':
        return reportOf(this.id, 'resumed', { stats: this.#stats(), timing: { ...this.#timing }, ...only });
      case 'failed':
        return reportOf(this.id, 'failed', error);
      case 'aborted':
        return reportOf(this.id, 'aborted', only);
    }
  }

  #stats(): CutoverStats {
    const h = this.#hold ?? { held: 0, flushed: 0, lost: 0, queued: 0, reclaimed: 0 };
    return { held: h.held, flushed: h.flushed, relayed: 0, lost: h.lost, announced: this.#announced };
  }

  async #receive(): Promise<void> {
    const got = await this.#expected!.result;
    if (this.#state !== 'prepared' || this.#cancel.signal.aborted) {
      if (got.ok) for (const s of got.sockets) s.destroy();
      return;
    }
    if (!got.ok) { this.#receiveFailed(got.error); return; }
    this.#sockets = got.sockets;
    this.#state = 'receiving';
    this.#ctx.log.info({ id: this.id, channels: got.sockets.length }, 'migration channels in: receiving');
    if (this.command.vm.portKind === 'stream' || this.command.vm.portKind === 'packet') {
      await this.#receiveQemu(got.sockets);
      return;
    }
    const result = await receiveMigration({
      channels: got.sockets,
      clock: this.#ctx.clock,
      signal: this.#cancel.signal,
      timeoutMs: this.#ctx.settings.engineTimeoutMs,
      logger: this.#ctx.log,
      ...(this.#ctx.chunks !== undefined ? { chunks: this.#ctx.chunks } : {}),
    });
    for (const s of this.#sockets) s.end();
    if (this.state !== 'receiving') return; // aborted meanwhile
    if (result.ok && result.guest !== undefined) {
      this.#guest = result.guest;
      this.#diskImage = result.diskImage;
      this.#state = 'ready';
      this.#timing.appliedAt = Math.round(this.#ctx.clock.wallNow());
      // The report first: the commit point waits for it.
      this.report();
      this.#ctx.log.info({ id: this.id, records: result.recordsApplied, chunkBlocks: result.chunkBlocks }, 'migration received and verified: ready (not running)');
      return;
    }
    this.#receiveFailed(result.error ?? new MigrationInternalError('the receiver failed without an error'));
  }

  /**
   * A QEMU VM: QEMU's own stream (channel 0) into an incoming QEMU on the held
   * port; ready once loaded (its RARP or its `completed`) and its RAM matches
   * the source's digest (channel 1).
   */
  async #receiveQemu(channels: readonly Duplex[]): Promise<void> {
    const ctx = this.#ctx;
    const port = ctx.daemon.port(this.port);
    if (ctx.qemu === undefined || !(port instanceof StreamPort || port instanceof PacketPort)) {
      this.#receiveFailed(new MigrationUnavailableError('this host runs no QEMU VMs (qemu: {dir} in its config)'));
      return;
    }
    const [channel, ramChannel] = channels;
    if (channel === undefined || ramChannel === undefined) {
      this.#receiveFailed(new QemuRamLineError(`the source dialled ${channels.length} channel(s); a QEMU VM's copy is verified against the RAM digest on a second one (both hosts must run a vnet that verifies QEMU copies)`));
      return;
    }
    const result = await receiveQemuMigration({
      id: this.id, vm: this.command.vm, channel, ramChannel, port, host: ctx.qemu, clock: ctx.clock,
      signal: this.#cancel.signal, timeoutMs: ctx.settings.engineTimeoutMs, log: ctx.log,
    });
    if (!result.ok) { this.#receiveFailed(result.error); return; }
    if (this.state !== 'receiving') { await result.vm.close(); return; } // aborted meanwhile
    this.#qemuVm = result.vm;
    this.#state = 'ready';
    this.#timing.appliedAt = Math.round(ctx.clock.wallNow());
    this.report();
    ctx.log.info({ id: this.id, trigger: result.trigger, readyAtMs: result.readyAtMs, ramXxh64: result.ram.xxh64, ramDigestMs: result.ram.digestMs, ramReader: result.ram.reader }, QEMU_READY_LOG);
  }

  #receiveFailed(err: VnetError): void {
    if (this.#state !== 'prepared' && this.#state !== 'receiving') return;
    this.#fail(err);
  }

  #fail(err: VnetError): void {
    this.#state = 'failed';
    this.#error = err;
    this.#discard();
    this.#ctx.log.warn({ id: this.id, code: err.code, detail: err.message }, 'incoming migration failed; copy discarded');
    this.report();
  }

  #discard(): void {
    this.#cancel.abort();
    this.#expected?.cancel('discarded');
    for (const s of this.#sockets) s.destroy();
    this.#guest = undefined;
    void this.#qemuVm?.close();
    this.#qemuVm = undefined;
    if (this.#portAdded) {
      this.#portAdded = false;
      void this.#ctx.daemon.removePort(this.port, `migration ${this.id} discarded`);
    }
  }

  #commit(): void {
    if (this.#state === 'resumed' || this.#state === 'resuming') { this.report(); return; }
    if (this.#state !== 'ready' || (this.#guest === undefined && this.#qemuVm === undefined)) { this.report(new MigrationStateError('migrate-commit', this.#state)); return; }
    this.#state = 'resuming';
    const ctx = this.#ctx;
    const vm = this.command.vm;
    const commitAtMs = Math.round(ctx.clock.wallNow());
    try {
      // What the source held and flushed is older than what came here straight once the rules pointed here.
      this.#hold = ctx.daemon.releasePort(vm.port, 'port', { firstFrom: this.command.from });
    } catch (err) {
      ctx.log.warn({ id: this.id, err: String(err) }, 'cannot release the held frames to the port');
    }
    // The source let go of its attachment before it reported `released`: frames from the VM spread by flow hash again.
    const port = ctx.daemon.port(vm.port);
    if (port !== undefined && typeof (port as { releaseSteering?: unknown }).releaseSteering === 'function') {
      try {
        (port as unknown as { releaseSteering(): void }).releaseSteering();
      } catch (err) {
        ctx.log.warn({ id: this.id, err: String(err) }, 'cannot release the TAP steering');
      }
    }
    const heldReleasedAtMs = Math.round(ctx.clock.wallNow());
    const guest = this.#guest;
    const qemuVm = this.#qemuVm;
    const done = (err?: VnetError): void => {
      try {
        this.#announced = ctx.daemon.announce(vm.port);
      } catch (e) {
        ctx.log.warn({ id: this.id, err: String(e) }, 'cannot announce the VM');
      }
      this.#state = 'resumed';
      this.#timing.resumedAt = Math.round(ctx.clock.wallNow());
      this.report(err);
      ctx.log.info({ id: this.id, port: vm.port, ...this.#stats() }, 'migration committed: VM resumed here and announced');
    };
    const runtime: Promise<VmRuntime> = qemuVm !== undefined ? Promise.resolve(qemuVm) : ctx.makeRuntime(vm, guest!, this.#diskImage);
    runtime.then(async (r) => {
      ctx.addVm(r);
      if (qemuVm === undefined) { await r.resume(); return; }
      const qemuPort = port instanceof StreamPort || port instanceof PacketPort ? port : undefined;
      await runIncomingQemu({ id: this.id, vm: qemuVm, port: qemuPort, wallNow: () => ctx.clock.wallNow(), log: ctx.log, commitAtMs, heldReleasedAtMs });
    }).then(() => done(), (err: unknown) => done(new MigrationInternalError(`the VM did not resume: ${String(err)}`, { cause: err })));
  }

  #abort(reason: string | undefined): void {
    if (this.#state === 'aborted') { this.report(); return; }
    if (this.#state === 'resumed' || this.#state === 'resuming') { this.report(new MigrationStateError('migrate-abort', 'resumed')); return; }
    this.#state = 'aborted';
    this.#discard();
    this.#ctx.log.info({ id: this.id, reason }, 'migration aborted; copy discarded');
    this.report();
  }
}
