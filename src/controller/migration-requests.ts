import { formatMac, isMacString, parseMac } from '../common/mac.ts';
import type { StopRuleName } from '../control/migration-control.ts';
import type { PlacementMove } from './api-views.ts';
import type { DeploymentPolicy } from './deployment-file.ts';
import {
  MigrationCommittedError, MigrationFinishedError, MigrationHostDownError, MigrationInProgressError, MigrationNotFoundError,
  MigrationRequestError, MigrationSameHostError, MigrationUnknownHostError, MigrationUnknownVmError,
} from './errors.ts';
import type { StartMigration } from './migration-coordinator.ts';
import { PRE_COMMIT_STEPS, type MigrationRun, type MigrationVm } from './migration-run.ts';
import type { HostRecord, VmRecord } from './store/records.ts';

/**
 * What may be migrated, checked before the coordinator hears of it: an
 * operator's request (the API, `vnet ctl migrate`) and auto-migrate's moves
 * (placement advice under `policy.autoMigrate`). Pure: the registry, the
 * connected hosts and the coordinator's runs in; a `StartMigration` out, or
 * an error with a stable code the API maps to 400/404/409.
 */

export interface MigrationRequest {
  /** The VM by MAC or by name. */
  vm: string;
  to: string;
  rule?: StopRuleName | undefined;
  /** For time-bound: the bound on the memory phase (seconds). */
  deadlineS?: number | undefined;
  requestedBy: string;
}

export interface RequestWorld {
  vms: readonly VmRecord[];
  hosts: readonly HostRecord[];
  connected: ReadonlySet<string>;
  runs: ReadonlyMap<string, MigrationRun>;
}

/** Steps in which a run still owns its VM (a second migration of it is refused). */
export function isActive(run: MigrationRun): boolean {
  return PRE_COMMIT_STEPS.has(run.step) || run.step === 'commit' || run.step === 'cutover' || run.step === 'aborting';
}

export function findVm(vms: readonly VmRecord[], nameOrMac: string): VmRecord | undefined {
  if (isMacString(nameOrMac)) {
    const mac = formatMac(parseMac(nameOrMac));
    const byMac = vms.find((v) => v.mac === mac);
    if (byMac !== undefined) return byMac;
  }
  return vms.find((v) => v.name === nameOrMac);
}

/** Check a request against the registry; the migration to start, or a typed error. */
export function resolveMigrationRequest(req: MigrationRequest, world: RequestWorld, id: string): StartMigration {
  const vm = findVm(world.vms, req.vm);
  if (vm === undefined) throw new MigrationUnknownVmError(req.vm);
  const hosts = new Map(world.hosts.map((h) => [h.id, h] as const));
  if (!hosts.has(req.to)) throw new MigrationUnknownHostError(req.to);
  const label = vm.name !== undefined ? `${vm.name} (${vm.mac})` : vm.mac;
  if (vm.host === undefined) throw new MigrationSameHostError(`VM ${label} is not placed on any host`);
  if (vm.host === req.to) throw new MigrationSameHostError(`VM ${label} already runs on ${req.to}`);
  const running = [...world.runs.values()].find((r) => r.vm.mac === vm.mac && isActive(r));
  if (running !== undefined) throw new MigrationInProgressError(label, running.id);
  if (!world.connected.has(req.to)) throw new MigrationHostDownError(req.to, `destination ${req.to} is down (no connected daemon)`);
  if (!world.connected.has(vm.host)) throw new MigrationHostDownError(vm.host, `source ${vm.host} is down (no connected daemon)`);
  const port = hosts.get(vm.host)?.facts?.ports.find((p) => p.mac === vm.mac);
  if (port === undefined) throw new MigrationHostDownError(vm.host, `source ${vm.host} does not report a port for VM ${label}`);
  const rule = req.rule ?? 'smart-stop';
  if (rule === 'time-bound' && req.deadlineS === undefined) throw new MigrationRequestError('the time-bound rule needs a deadline (deadlineS, seconds)');
  if (req.deadlineS !== undefined && (!Number.isFinite(req.deadlineS) || req.deadlineS <= 0 || req.deadlineS > 86_400)) {
    throw new MigrationRequestError(`deadline ${req.deadlineS} s out of range (0 < deadline ≤ 86400)`);
  }
  const mvm: MigrationVm = { mac: vm.mac, port: port.name };
  const ip = vm.ip ?? port.ip;
  if (ip !== undefined) mvm.ip = ip;
  if (vm.name !== undefined) mvm.name = vm.name;
  if (port.kind === 'stream' || port.kind === 'packet') mvm.portKind = port.kind;
  return {
    id, vm: mvm, from: vm.host, to: req.to, rule, requestedBy: req.requestedBy,
    deadlineMs: req.deadlineS === undefined ? null : Math.round(req.deadlineS * 1000),
  };
}

/** A cancel is possible before the commit point only. */
export function checkCancel(runs: ReadonlyMap<string, MigrationRun>, stored: { step: string } | undefined, id: string): void {
  const run = runs.get(id);
  if (run === undefined) {
    if (stored === undefined) throw new MigrationNotFoundError(id);
    throw new MigrationFinishedError(id, stored.step);
  }
  if (PRE_COMMIT_STEPS.has(run.step)) return;
  if (run.step === 'aborting' || run.step === 'aborted') throw new MigrationFinishedError(id, run.step);
  throw new MigrationCommittedError(id, run.step);
}

export interface AutoMigrationPlan {
  start: PlacementMove[];
  skipped: Array<{ move: PlacementMove; reason: string }>;
}

/**
 * Which of placement's proposed moves auto-migrate starts now: no more than
 * `autoMigrateMaxConcurrent` migrations at once (operators' count too), and a
 * VM moved (or tried) less than `autoMigrateCooldownMs` ago stays put.
 */
export function planAutoMigrations(
  moves: readonly PlacementMove[], runs: ReadonlyMap<string, MigrationRun>, lastMigratedMs: ReadonlyMap<string, number>,
  policy: Readonly<DeploymentPolicy>, nowMs: number,
): AutoMigrationPlan {
  const out: AutoMigrationPlan = { start: [], skipped: [] };
  if (!policy.autoMigrate) return out;
  let active = [...runs.values()].filter(isActive).length;
  const busy = new Set([...runs.values()].filter(isActive).map((r) => r.vm.mac));
  for (const move of moves) {
    const last = lastMigratedMs.get(move.vm);
    if (busy.has(move.vm)) out.skipped.push({ move, reason: 'already migrating' });
    else if (last !== undefined && nowMs - last < policy.autoMigrateCooldownMs) {
      out.skipped.push({ move, reason: `cool-down: migrated ${Math.round((nowMs - last) / 1000)} s ago (autoMigrateCooldownMs ${policy.autoMigrateCooldownMs})` });
    } else if (active >= policy.autoMigrateMaxConcurrent) {
      out.skipped.push({ move, reason: `${active} migration(s) running (autoMigrateMaxConcurrent ${policy.autoMigrateMaxConcurrent})` });
    } else {
      out.start.push(move);
      active++;
      busy.add(move.vm);
    }
  }
  return out;
}
