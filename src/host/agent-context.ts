/**
 * What one migration (source-migration.ts, destination-migration.ts) gets
 * from the agent that runs it: the daemon, time, the host's credentials and
 * channel listener, the VM registry, settings, and where its reports go.
 */
import type { Clock } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import type { MigrationReport, MigrationReportState, MigratePrepare } from '../control/migration-control.ts';
import type { Port } from '../dataplane/port.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import type { Guest } from '../migration/guest.ts';
import type { DiskImageRecord } from '../migration/engine/stream-image-records.ts';
import type { LocalChunks } from '../migration/drivers/disk-image-exchange.ts';
import type { MigrationChannelListener } from './migration-channel.ts';
import type { MigrationDaemon } from './migration-daemon.ts';
import type { QemuHost } from './qemu-host.ts';
import type { VmRuntime } from './vm-runtime.ts';

export type MigrationVm = MigratePrepare['vm'];

export interface AgentSettings {
  /** Progress reports at most this often (default 250 ms: four a second). */
  readonly progressEveryMs: number;
  /** A migration's engine (send or receive) gives up after this long (default 15 min). */
  readonly engineTimeoutMs: number;
  /** Dialling the destination's channel: connect, TLS and hello (default 5 s). */
  readonly channelTimeoutMs: number;
}

export const DEFAULT_AGENT_SETTINGS: AgentSettings = Object.freeze({ progressEveryMs: 250, engineTimeoutMs: 15 * 60_000, channelTimeoutMs: 5000 });

export interface AgentContext {
  readonly daemon: MigrationDaemon;
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: AgentSettings;
  readonly credentials: TlsCredentials | undefined;
  readonly channel: MigrationChannelListener | undefined;
  /** This site's image chunk store, answering a source's chunk-query and filling chunk records (disk-image-exchange.ts). */
  readonly chunks: LocalChunks | undefined;
  /** How this host runs QEMU VMs (arriving ones included), if it does. */
  readonly qemu: QemuHost | undefined;
  /** Why this host cannot migrate at all (no TLS, no listener), if it cannot. */
  readonly unavailable: VnetError | undefined;
  emit(report: MigrationReport): void;
  vm(port: string): VmRuntime | undefined;
  addVm(vm: VmRuntime): void;
  removeVm(port: string): void;
  /** The port a destination creates for an arriving VM (a memory port unless the host says otherwise). */
  makePort(vm: MigrationVm): Port;
  /** The runtime of a VM that arrived (at commit, before it resumes; a model-guest VM, with the traffic the host gives it, unless the host says otherwise). */
  makeRuntime(vm: MigrationVm, guest: Guest, image?: ArrivedDiskImage): Promise<VmRuntime>;
}

/** What an arriving VM's disk is made from, as its migration said (a disk-image record): an image version, copy-on-write. */
export type ArrivedDiskImage = Omit<DiskImageRecord, 't'>;

/** The report fields every state shares. */
export function errorBody(err: VnetError): { code: string; message: string } {
  return { code: err.code, message: err.message.slice(0, 4096) };
}

export function reportOf(id: string, state: MigrationReportState, extra: Omit<MigrationReport, 'type' | 'id' | 'state'> = {}): MigrationReport {
  return { type: 'migration', id, state, ...extra };
}

/** States after which nothing more happens to a migration. */
export function isFinal(state: string): boolean {
  return state === 'released' || state === 'resumed' || state === 'failed' || state === 'aborted';
}
