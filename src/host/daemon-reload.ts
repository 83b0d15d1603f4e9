/**
 * Carries out a configuration reload (`vnet daemon` on SIGHUP): the plan of
 * dataplane/reload-plan.ts applied to the running daemon, in an order that
 * leaves the daemon as it was when something is refused.
 *
 *   1. refuse     a fixed setting changed (host id, role, listen address,
 *                 transport…): one error line naming them; nothing applied
 *   2. check      the new rules parse; no port to remove or replace has a
 *                 VM in migration; the new ports open (TAP devices made,
 *                 moved, addressed) — if one fails, the ones opened are
 *                 closed and nothing is applied
 *   3. ports      removed ports closed (their VMs forgotten, a QEMU guest's
 *                 QEMU stopped first), replaced ports closed and opened
 *                 again, new ports added with their VMs (a `qemu:` port's
 *                 guest booted in the background, as at start:
 *                 qemu-guests.ts); changed security limits set in place
 *   4. rules, fast-path links, log level
 *
 * Links and ports the plan does not name are not touched: their counters
 * carry on and nothing reconnects. A replaced port that cannot be opened
 * again is logged and left out (its old device is gone by then).
 */
import { componentLogger, type Logger } from '../common/logger.ts';
import { parseMac } from '../common/mac.ts';
import { realClock } from '../common/clock.ts';
import type { Daemon } from '../dataplane/daemon.ts';
import type { DaemonConfig } from '../dataplane/daemon-config.ts';
import { parseRules } from '../dataplane/forwarding-rule.ts';
import type { PacketPort } from '../dataplane/packet-port.ts';
import type { Port } from '../dataplane/port.ts';
import type { PortSecurityPolicy } from '../dataplane/port-security.ts';
import { describePlan, isEmptyPlan, planReload, type PortSpec, type ReloadPlan } from '../dataplane/reload-plan.ts';
import { openConfiguredPort } from './configured-port.ts';
import type { ImagePropagator } from './image-propagator.ts';
import { startImageVm } from './image-vm.ts';
import type { MigrationAgent } from './migration-agent.ts';
import type { QemuGuests } from './qemu-guests.ts';
import type { StreamPort } from '../dataplane/stream-port.ts';
import { NamespaceGuestVm } from './namespace-vm-runtime.ts';
import { createModelGuest, DEFAULT_MODEL_GUEST, ModelGuestVm } from './vm-runtime.ts';

export interface ReloadTarget {
  /** The process's root logger: its level is the log level a reload sets. */
  logger: Logger;
  daemon: Daemon;
  migrations: MigrationAgent;
  /** The log level when the configuration names none. */
  defaultLogLevel: string;
  /** This site's image propagator (config `images`): what a VM's disk from an image reads. */
  images?: ImagePropagator | undefined;
  /** The guests of `qemu:` ports, when the config has `qemu: {dir}`. */
  guests?: QemuGuests | undefined;
}

/** The QEMU guests a reload started booting (in the background) and those it stopped, by port. */
export interface ReloadedGuests {
  readonly booting: readonly string[];
  readonly stopped: readonly string[];
}

export type ReloadOutcome =
  | { readonly applied: true; readonly plan: ReloadPlan; readonly qemu: ReloadedGuests }
  | { readonly applied: false; readonly reason: RefusalReason; readonly message: string };

/** Why a reload was refused: a fixed setting changed, bad rules, a port that cannot open, a port whose VM is in migration. */
export type RefusalReason = 'fixed-settings' | 'rules' | 'ports' | 'migrating';

/** A port's security as the daemon takes it (MACs parsed); absent: the defaults. */
export function portSecurity(spec: PortSpec): Partial<PortSecurityPolicy> {
  return spec.security === undefined ? {} : { ...spec.security, allowedMacs: spec.security.allowedMacs.map(parseMac) };
}

/**
 * Add an opened configured port to the daemon, with the VM that stands behind
 * it (what a migration moves): at start and at a reload alike. A `qemu:`
 * port's guest boots in the background; returns whether one does.
 */
export function addConfiguredPort(target: Pick<ReloadTarget, 'logger' | 'daemon' | 'migrations' | 'images' | 'guests'>, spec: PortSpec, port: Port): boolean {
  const { logger, daemon, migrations } = target;
  daemon.addPort(port, spec.ip, { security: portSecurity(spec) });
  if (spec.qemu !== undefined && target.guests !== undefined) {
    // A real guest: the daemon boots it on the stream port or TAP device; QEMU's own migration moves it.
    void target.guests.boot(port as StreamPort | PacketPort, spec.qemu.memoryMiB, spec.ip);
    return true;
  }
  if (spec.guest?.image !== undefined && target.images !== undefined) {
    // Its disk is an image version: registered once the controller has announced it here.
    void startImageVm({ logger, clock: realClock, migrations, images: target.images, portConfigured: () => daemon.port(spec.name) === port }, port, { ...spec.guest, image: spec.guest.image });
    return false;
  }
  const g = spec.guest ?? DEFAULT_MODEL_GUEST;
  const guest = createModelGuest(spec.name, { profile: g.profile, memoryMiB: g.memoryMiB, diskMiB: g.diskMiB }, realClock.now());
  const init = { name: spec.name, mac: port.mac, port: spec.name, guest };
  // A TAP device in a VM's namespace: the namespace VM (its processes frozen at the pause) with its model guest.
  migrations.addVm(spec.type === 'tap' && spec.netns !== undefined
    ? new NamespaceGuestVm({ clock: realClock, logger }, { ...init, netns: spec.netns })
    : new ModelGuestVm({ clock: realClock }, init));
  return false;
}

/** Close a configured port with its VM: a QEMU guest's QEMU quits before its socket or TAP device goes. Whether a QEMU was stopped. */
async function removeConfiguredPort(target: ReloadTarget, name: string): Promise<boolean> {
  const stopped = await target.guests?.stop(name).catch(() => false) ?? false;
  const vm = target.migrations.removeVm(name);
  await vm?.close?.().catch(() => undefined);
  await target.daemon.removePort(name, 'configuration reload');
  return stopped;
}

/** Apply `next` over the running `current` configuration; the outcome says what was done, and the log says it too. */
export async function reloadDaemon(target: ReloadTarget, current: DaemonConfig, next: DaemonConfig, source: string): Promise<ReloadOutcome> {
  const { logger, daemon } = target;
  const log = componentLogger(logger, 'reload');
  const plan = planReload(current, next, { defaultLogLevel: target.defaultLogLevel });
  /** One error line, and nothing applied. */
  const refuse = (reason: RefusalReason, message: string): ReloadOutcome => {
    log.error({ file: source, reason }, `reload refused: ${message}; the running configuration is unchanged`);
    return { applied: false, reason, message };
  };
  if (plan.fixed.length > 0) {
    return refuse('fixed-settings', `${source}: ${plan.fixed.join(', ')} cannot change while the daemon runs (restart it to change ${plan.fixed.length === 1 ? 'it' : 'them'})`);
  }
  if (isEmptyPlan(plan)) {
    log.info({ file: source }, 'configuration reloaded: nothing changed');
    return { applied: true, plan, qemu: { booting: [], stopped: [] } };
  }
  if (plan.rules !== undefined) {
    try {
      parseRules(plan.rules, 'config');
    } catch (err) {
      return refuse('rules', `${source}: rules: ${(err as Error).message}`);
    }
  }
  for (const name of [...plan.portsRemoved, ...plan.portsReplaced.map((p) => p.name)]) {
    const id = target.migrations.migrationOf(name);
    if (id !== undefined) return refuse('migrating', `${source}: port ${name}: its VM is in migration ${id}; change or remove the port once the migration has ended`);
  }
  const taken = plan.portsAdded.find((p) => daemon.port(p.name) !== undefined);
  if (taken !== undefined) return refuse('ports', `${source}: port ${taken.name}: this daemon has a port of that name already (a VM that arrived by migration)`);
  const opened: { spec: PortSpec; port: Port }[] = [];
  for (const spec of plan.portsAdded) {
    try {
      opened.push({ spec, port: await openConfiguredPort(logger, spec, target.guests?.host) });
    } catch (err) {
      for (const o of opened) await o.port.close().catch(() => undefined);
      return refuse('ports', `${source}: port ${spec.name}: ${(err as Error).message}`);
    }
  }

  const booting: string[] = [];
  const stopped: string[] = [];
  const remove = async (name: string): Promise<void> => {
    if (await removeConfiguredPort(target, name)) stopped.push(name);
  };
  const add = (spec: PortSpec, port: Port): void => {
    if (addConfiguredPort(target, spec, port)) booting.push(spec.name);
  };
  for (const name of plan.portsRemoved) await remove(name);
  for (const spec of plan.portsReplaced) {
    await remove(spec.name);
    try {
      add(spec, await openConfiguredPort(logger, spec, target.guests?.host));
    } catch (err) {
      log.error({ port: spec.name, err: (err as Error).message }, 'a changed port could not be opened again; it is left out until the next reload');
    }
  }
  for (const { spec, port } of opened) add(spec, port);
  for (const spec of plan.security) daemon.setPortSecurity(spec.name, portSecurity(spec));

  if (plan.rules !== undefined) daemon.setRules('config', plan.rules);
  if (plan.fastPath !== undefined) applyFastPath(target, log, plan.fastPath);
  if (plan.logLevel !== undefined) logger.level = plan.logLevel;
  log.info({ file: source, ...describePlan(plan), qemuBooting: booting, qemuStopped: stopped }, 'configuration reloaded');
  return { applied: true, plan, qemu: { booting, stopped } };
}

/**
 * The configured fast-path links. Once the controller has sent its own set
 * (version > 0), the links are the controller's: the file's change is not
 * applied over them, and the log says so.
 */
function applyFastPath(target: ReloadTarget, log: Logger, fastPath: NonNullable<ReloadPlan['fastPath']>): void {
  const version = target.daemon.facts().linksVersion;
  if (version > 0) {
    log.warn({ linksVersion: version }, 'fastPath changed in the file, but the controller manages this daemon\'s fast-path links: not applied');
    return;
  }
  const redial = new Set(fastPath.redial);
  if (redial.size > 0) target.daemon.applyFastPathLinks(0, fastPath.links.filter((l) => !redial.has(l.peer)));
  target.daemon.applyFastPathLinks(0, fastPath.links);
}
