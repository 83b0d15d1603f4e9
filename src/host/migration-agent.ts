/**
 * The host's migration agent: the daemon's side of the migration contract
 * (docs/control-protocol.md, "Migration"), driven by the controller agent
 * through `MigrationControl`.
 *
 *   migrate-prepare  → a DestinationMigration (destination-migration.ts)
 *   migrate-start    → a SourceMigration (source-migration.ts), for a VM this
 *                      host runs (a VmRuntime registered with `addVm`)
 *   commit / abort / query → the migration of that id; `unknown` if none
 *
 * Every command is idempotent: a repeated one re-reports where the migration
 * stands; one that does not fit (a commit before `ready`, an id reused for
 * another VM or host) re-reports it with the refusal as `error`. Nothing is
 * thrown: a failure is a report. Finished migrations are kept (the last
 * `keepFinished`, default 256) so late queries still get their answer.
 */
import type { Clock } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatMac, parseMac } from '../common/mac.ts';
import type { MigrateStart, MigrationCommand, MigrationControl, MigrationReport } from '../control/migration-control.ts';
import { MemoryPort } from '../dataplane/memory-port.ts';
import type { Port } from '../dataplane/port.ts';
import { StreamPort } from '../dataplane/stream-port.ts';
import type { QemuHost } from './qemu-host.ts';
import { freeTapName, openQemuTapPort } from './qemu-tap.ts';
import type { Guest } from '../migration/guest.ts';
import type { LocalChunks } from '../migration/drivers/disk-image-exchange.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { DEFAULT_AGENT_SETTINGS, isFinal, reportOf, type AgentContext, type AgentSettings, type ArrivedDiskImage, type MigrationVm } from './agent-context.ts';
import { DestinationMigration } from './destination-migration.ts';
import { MigrationAgentClosedError, MigrationConflictError, MigrationUnavailableError, UnknownVmError } from './errors.ts';
import type { MigrationChannelListener } from './migration-channel.ts';
import type { MigrationDaemon } from './migration-daemon.ts';
import { SourceMigration } from './source-migration.ts';
import { ModelGuestVm, type TrafficSource, type VmRuntime } from './vm-runtime.ts';

export interface MigrationAgentComponents {
  readonly daemon: MigrationDaemon;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The destination's channel listener (the agent closes it). Without it the host can send VMs away but not receive them. */
  readonly channel?: MigrationChannelListener | undefined;
  /** This host's certificate, key and the deployment CA: what the source dials with. Without them the host cannot migrate at all. */
  readonly credentials?: TlsCredentials | undefined;
  /** The port an arriving VM gets (default: a memory port with its name and MAC). */
  readonly makePort?: ((vm: MigrationVm) => Port) | undefined;
  /** What an arriving VM runs beside its guest once it resumes here, on the port `makePort` gave it (default: nothing). */
  readonly trafficFor?: ((vm: MigrationVm, port: Port) => TrafficSource | undefined) | undefined;
  /** How this host runs QEMU VMs: an arriving QEMU VM (`portKind: stream` or `packet`) gets a port of that kind and an incoming QEMU on it. */
  readonly qemu?: QemuHost | undefined;
  /** The runtime of a VM that arrived, made at commit before it resumes (default: a model-guest VM on its port, running `trafficFor`). */
  readonly makeRuntime?: ((vm: MigrationVm, guest: Guest, image?: ArrivedDiskImage) => Promise<VmRuntime>) | undefined;
  /** This site's image chunk store (config `images`): an arriving VM's disk spans the store holds are filled from it, not sent (docs/images.md). */
  readonly chunks?: LocalChunks | undefined;
}

export interface MigrationAgentInit extends Partial<AgentSettings> {
  /** Why this host cannot migrate (e.g. no TLS directory): every command is answered `failed` with it. */
  readonly unavailable?: VnetError | undefined;
  readonly keepFinished?: number | undefined;
}

type Migration = SourceMigration | DestinationMigration;

export class MigrationAgent implements MigrationControl {
  readonly #log: Logger;
  readonly #ctx: AgentContext;
  readonly #channel: MigrationChannelListener | undefined;
  readonly #handlers = new Set<(report: MigrationReport) => void>();
  readonly #migrations = new Map<string, Migration>();
  readonly #vms = new Map<string, VmRuntime>();
  readonly #keepFinished: number;
  #closed = false;

  constructor(components: MigrationAgentComponents, init: MigrationAgentInit = {}) {
    this.#log = componentLogger(components.logger, 'migration-agent', { host: components.daemon.hostId });
    this.#channel = components.channel;
    this.#keepFinished = init.keepFinished ?? 256;
    const unavailable = init.unavailable
      ?? (components.credentials === undefined ? new MigrationUnavailableError('this host has no TLS credentials (tls: {dir}); migration channels need them') : undefined);
    const qemu = components.qemu;
    const givenPort = components.makePort ?? ((vm: MigrationVm): Port => new MemoryPort({ name: vm.port, mac: parseMac(vm.mac) }));
    const makePort = (vm: MigrationVm): Port => (vm.portKind === 'stream' || vm.portKind === 'packet' ? arrivingQemuPort(vm, qemu, components.logger) : givenPort(vm));
    const clock = components.clock;
    const daemon = components.daemon;
    const trafficFor = components.trafficFor ?? ((): TrafficSource | undefined => undefined);
    const makeRuntime = components.makeRuntime ?? (async (vm: MigrationVm, guest: Guest): Promise<VmRuntime> => {
      const port = daemon.port(vm.port);
      const traffic = port === undefined ? undefined : trafficFor(vm, port);
      return new ModelGuestVm({ clock }, { name: vm.name ?? vm.port, mac: parseMac(vm.mac), port: vm.port, guest, traffic });
    });
    this.#ctx = {
      daemon: components.daemon,
      clock: components.clock,
      log: this.#log,
      settings: {
        progressEveryMs: init.progressEveryMs ?? DEFAULT_AGENT_SETTINGS.progressEveryMs,
        engineTimeoutMs: init.engineTimeoutMs ?? DEFAULT_AGENT_SETTINGS.engineTimeoutMs,
        channelTimeoutMs: init.channelTimeoutMs ?? DEFAULT_AGENT_SETTINGS.channelTimeoutMs,
      },
      credentials: components.credentials,
      channel: components.channel,
      chunks: components.chunks,
      qemu,
      unavailable,
      emit: (report) => this.#emit(report),
      vm: (port) => this.#vms.get(port),
      addVm: (vm) => this.addVm(vm),
      removeVm: (port) => { this.#vms.delete(port); },
      makePort,
      makeRuntime,
    };
  }

  /** Why this host cannot migrate, if it cannot. */
  get unavailable(): VnetError | undefined {
    return this.#ctx.unavailable;
  }

  /** Register a VM this host runs (it can then be migrated away). */
  addVm(vm: VmRuntime): void {
    this.#vms.set(vm.port, vm);
  }

  /** Forget a VM this host ran (its port was removed); returns it, if it was registered. */
  removeVm(port: string): VmRuntime | undefined {
    const vm = this.#vms.get(port);
    this.#vms.delete(port);
    return vm;
  }

  vm(port: string): VmRuntime | undefined {
    return this.#vms.get(port);
  }

  get vms(): readonly VmRuntime[] {
    return [...this.#vms.values()];
  }

  /** The migration under way here of the VM on `port` (as source or destination), if one is: its id. */
  migrationOf(port: string): string | undefined {
    return [...this.#migrations.values()].find((m) => m.active && m.port === port)?.id;
  }

  /** Where migration `id` stands here (for tests and the admin interface), or undefined. */
  stateOf(id: string): string | undefined {
    return this.#migrations.get(id)?.state;
  }

  onReport(handler: (report: MigrationReport) => void): () => void {
    this.#handlers.add(handler);
    return () => { this.#handlers.delete(handler); };
  }

  handle(command: MigrationCommand): void {
    try {
      this.#handle(command);
    } catch (err) {
      this.#log.error({ err, id: command.id, type: command.type }, 'migration command failed unexpectedly');
      this.#emit(reportOf(command.id, 'failed', { error: { code: 'VNET_ERR_HOST_MIGRATION_INTERNAL', message: String((err as Error).message ?? err).slice(0, 4096) } }));
    }
  }

  /** Stop every migration where it is (a paused source guest stays paused) and close the channel listener. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#migrations.values()) m.close();
    await this.#channel?.close();
  }

  #handle(command: MigrationCommand): void {
    const existing = this.#migrations.get(command.id);
    if (command.type === 'migrate-prepare' || command.type === 'migrate-start') {
      if (existing !== undefined) {
        if (sameCommand(existing, command)) existing.handle(command);
        else existing.report(new MigrationConflictError(`migration ${command.id} is already known here as a ${existing.role} of another VM or host`));
        return;
      }
      if (this.#closed) {
        this.#emit(reportOf(command.id, 'failed', { error: errorOf(new MigrationAgentClosedError()) }));
        return;
      }
      this.#evictFinished();
      if (command.type === 'migrate-prepare') {
        const d = new DestinationMigration(this.#ctx, command);
        this.#migrations.set(command.id, d);
        d.prepare();
      } else {
        this.#startSource(command);
      }
      return;
    }
    if (existing === undefined) {
      this.#emit(reportOf(command.id, 'unknown'));
      return;
    }
    existing.handle(command);
  }

  #startSource(command: MigrateStart): void {
    const runtime = this.#vms.get(command.vm.port);
    const busy = this.migrationOf(command.vm.port);
    const s = new SourceMigration(this.#ctx, command, runtime);
    this.#migrations.set(command.id, s);
    if (this.#ctx.unavailable !== undefined) { s.fail(this.#ctx.unavailable); return; }
    if (runtime === undefined) { s.fail(new UnknownVmError(command.vm.port, 'no VM of this host runs on it')); return; }
    if (formatMac(runtime.mac) !== command.vm.mac) { s.fail(new UnknownVmError(command.vm.port, `its VM is ${formatMac(runtime.mac)}, not ${command.vm.mac}`)); return; }
    if (busy !== undefined) { s.fail(new MigrationConflictError(`port ${command.vm.port} is in migration ${busy}`)); return; }
    if (command.to === this.#ctx.daemon.hostId) { s.fail(new MigrationConflictError('a migration to this host itself')); return; }
    s.start();
  }

  #evictFinished(): void {
    if (this.#migrations.size < this.#keepFinished) return;
    for (const [id, m] of this.#migrations) {
      if (this.#migrations.size < this.#keepFinished) break;
      if (!isFinal(m.state)) continue;
      this.#migrations.delete(id);
      const again = [...this.#migrations.values()].some((o) => o.role === 'source' && o.command.vm.mac === m.command.vm.mac);
      if (m.role === 'source' && !again) this.#ctx.daemon.forgetRelay(parseMac(m.command.vm.mac));
    }
  }

  #emit(report: MigrationReport): void {
    for (const h of this.#handlers) {
      try {
        h(report);
      } catch (err) {
        this.#log.error({ err }, 'migration report handler threw');
      }
    }
  }
}

function sameCommand(m: Migration, c: MigrationCommand): boolean {
  if (c.type === 'migrate-prepare') return m.role === 'destination' && m.command.from === c.from && sameVm(m.command.vm, c.vm);
  if (c.type === 'migrate-start') return m.role === 'source' && m.command.to === c.to && sameVm(m.command.vm, c.vm);
  return true;
}

function sameVm(a: MigrationVm, b: MigrationVm): boolean {
  return a.mac === b.mac && a.port === b.port;
}

/**
 * The port a QEMU VM arrives on, of the kind it had on the source: a stream
 * port where this host's QEMU VMs' sockets are, or a TAP device of the
 * port's name behind a packet port (locked to the VM's MAC and address).
 */
function arrivingQemuPort(vm: MigrationVm, qemu: QemuHost | undefined, logger: Logger): Port {
  if (qemu === undefined) throw new MigrationUnavailableError(`VM ${vm.mac} is a QEMU VM and this host runs no QEMU VMs (qemu: {dir} in its config)`);
  const mac = parseMac(vm.mac);
  if (vm.portKind === 'packet') return openQemuTapPort({ name: vm.port, ifname: freeTapName(vm.port), mac, mtu: 1500, ips: vm.ip === undefined ? [] : [vm.ip.split('/')[0]!], logger });
  return StreamPort.open({ name: vm.port, mac, mtu: 1500, path: qemu.socketPath(vm.port), logger });
}

function errorOf(err: VnetError): { code: string; message: string } {
  return { code: err.code, message: err.message };
}
