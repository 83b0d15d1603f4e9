import type { ControllerMessage } from '../control/control-protocol.ts';
import { event, noEffects, type Effects, type Planned } from './effects.ts';
import type { CoordinatorState, CoordinatorWorld } from './migration-coordinator.ts';
import { cloneSpans } from './migration-spans.ts';
import { FINAL_STEPS, migrationRecord, migrationViewOf, type MigrationRun, type MigrationTimeouts } from './migration-run.ts';
import type { LinkRecord, VmRecord } from './store/records.ts';
import { vmView } from './views.ts';

/**
 * One pass of the migration coordinator (migration-coordinator.ts), the
 * plumbing of it: the runs as they change, the effects they collect (step
 * rows, the migration records — durable for a commit point — VM and link
 * writes, events, messages, logs), and the migration's fast-path link: made
 * for it, taken from adaptation and handed back, or left alone when it is
 * someone else's; passed on to another migration of the same host pair
 * rather than removed under it. The steps themselves are the subclass's.
 */

export function cloneRun(r: MigrationRun): MigrationRun {
  return { ...r, vm: { ...r.vm }, commitSentMs: { ...r.commitSentMs }, query: r.query === null ? null : { ...r.query }, abort: r.abort === null ? null : { ...r.abort }, ...(r.spans !== undefined ? { spans: cloneSpans(r.spans) } : {}) };
}

export function pairOf(a: string, b: string): [string, string] {
  return a < b ? [a, b] : [b, a];
}

export abstract class MigrationPass {
  protected readonly runs: Map<string, MigrationRun>;
  protected readonly world: CoordinatorWorld;
  protected readonly t: Readonly<MigrationTimeouts>;
  protected readonly now: number;
  protected readonly effects = noEffects();
  protected readonly changed = new Set<string>();
  protected readonly rows: Effects['writes'] = [];
  protected readonly durable = new Set<string>();
  /** Committed in this pass: the rules that say so are not computed yet, so nothing waits on them here. */
  protected readonly committed = new Set<string>();
  protected readonly vms = new Map<string, VmRecord>();
  protected links: LinkRecord[];

  constructor(state: CoordinatorState, world: CoordinatorWorld, timeouts: Readonly<MigrationTimeouts>, nowMs: number) {
    this.runs = new Map(state.runs);
    this.world = world;
    this.t = timeouts;
    this.now = nowMs;
    this.links = [...world.links];
  }

  /** Timeouts and the steps that wait on the world, for every run not final. */
  protected abstract advance(): void;

  // ---- links and the VM ------------------------------------------------------------

  protected linkBetween(a: string, b: string): LinkRecord | undefined {
    const [x, y] = pairOf(a, b);
    return this.links.find((l) => l.a === x && l.b === y);
  }

  protected putLink(a: string, b: string, requestedBy: string, reason: string): void {
    const [x, y] = pairOf(a, b);
    const link = { a: x, b: y, kind: 'fast-path' as const, requestedBy, reason };
    this.effects.writes.push({ op: 'put-link', link, atMs: this.now });
    this.links = [...this.links.filter((l) => !(l.a === x && l.b === y && l.kind === 'fast-path')), { ...link, createdMs: this.now }];
    this.effects.reconcile ??= `migration link ${x}–${y}: ${reason}`;
  }

  /** The fast-path link the migration relies on (the relay at the cutover): made, or taken from adaptation, or someone else's. */
  protected takeLink(run: MigrationRun): MigrationRun['linkOwner'] {
    const existing = this.linkBetween(run.from, run.to);
    const reason = `migration ${run.id}: ${this.vmName(run)} ${run.from}→${run.to}`;
    if (existing === undefined) { this.putLink(run.from, run.to, `migration:${run.id}`, reason); return 'migration'; }
    if (existing.kind === 'fast-path' && existing.requestedBy === 'adaptation') { this.putLink(run.from, run.to, `migration:${run.id}`, reason); return 'adaptation'; }
    return 'other';
  }

  protected releaseLink(run: MigrationRun): void {
    if (run.linkOwner === 'other') return;
    const link = this.linkBetween(run.from, run.to);
    if (link === undefined || link.requestedBy !== `migration:${run.id}`) return;
    const heir = [...this.runs.values()].find((r) => r.id !== run.id && !FINAL_STEPS.has(r.step) && r.step !== 'aborting' && r.linkOwner === 'other'
      && pairOf(r.from, r.to).join('|') === pairOf(run.from, run.to).join('|'));
    if (heir !== undefined) {
      this.putLink(run.from, run.to, `migration:${heir.id}`, `migration ${heir.id}: ${this.vmName(heir)} ${heir.from}→${heir.to}`);
      const h = cloneRun(heir);
      h.linkOwner = run.linkOwner;
      this.put(h);
    } else if (run.linkOwner === 'adaptation') {
      this.putLink(run.from, run.to, 'adaptation', `kept after migration ${run.id} while traffic pays for it`);
    } else {
      this.effects.writes.push({ op: 'delete-link', a: link.a, b: link.b, kind: 'fast-path' });
      this.links = this.links.filter((l) => l !== link);
      this.effects.events.push(event('link-removed', { a: link.a, b: link.b, kind: 'fast-path', actor: `migration:${run.id}`, reason: `migration ${run.id} ended` }));
      this.effects.reconcile ??= `migration ${run.id}: link ${link.a}–${link.b} removed`;
    }
  }

  protected setVm(mac: string, host: string, state: VmRecord['state']): void {
    const vm = this.vms.get(mac) ?? this.world.vm(mac);
    if (vm === undefined || (vm.host === host && vm.state === state)) return;
    const next: VmRecord = { ...vm, host, state, updatedMs: this.now };
    this.vms.set(mac, next);
    this.effects.writes.push({ op: 'upsert-vm', vm: next });
    this.effects.events.push(event('vm-changed', { vm: vmView(next) }));
  }

  protected vmName(run: MigrationRun): string {
    return run.vm.name ?? run.vm.mac;
  }

  // ---- effects ------------------------------------------------------------------

  protected put(run: MigrationRun): void {
    this.runs.set(run.id, run);
    this.changed.add(run.id);
  }

  protected row(run: MigrationRun, step: string, state: string, detail: Record<string, unknown>): void {
    this.rows.push({ op: 'migration-step', step: { migrationId: run.id, step, state, atMs: this.now, detail } });
  }

  protected send(host: string, message: ControllerMessage): void {
    this.effects.messages.push({ host, message });
  }

  protected log(level: 'debug' | 'info' | 'warn' | 'error', run: MigrationRun, msg: string): void {
    this.effects.logs.push({ level, fields: { migration: run.id, vm: run.vm.mac, from: run.from, to: run.to, step: run.step }, msg });
  }

  finish(): Planned<CoordinatorState> {
    this.advance();
    const e = this.effects;
    // The migration rows first (the commit point with them), then the VM and link writes of the same pass, in one transaction.
    const head: Effects['writes'] = [];
    for (const id of this.changed) {
      const run = this.runs.get(id);
      if (run === undefined) continue;
      head.push({ op: 'migration', migration: migrationRecord(run), ...(this.durable.has(id) ? { durable: true } : {}) });
    }
    const writes = [...head, ...this.rows, ...e.writes];
    e.writes.splice(0, e.writes.length, ...writes);
    for (const id of this.changed) {
      const run = this.runs.get(id);
      if (run !== undefined) e.events.push(event('migration-changed', { migration: migrationViewOf(run) }));
    }
    return { state: { runs: this.runs }, effects: e };
  }
}
