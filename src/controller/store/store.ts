import BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';
import type { Logger } from '../../common/logger.ts';
import type { DaemonFacts, LinkKind } from '../../control/daemon-control.ts';
import { StoreError } from '../errors.ts';
import { applyMigrations } from './migrations.ts';
import type {
  AuditRecord, DesiredVersions, EventRecord, HostRecord, LinkRecord,
  MigrationRecord, MigrationState, MigrationStepRecord, TopologyRecord, TrafficSampleRecord, VmRecord,
} from './records.ts';
import { SCHEMA_MIGRATIONS } from './schema.ts';
import { AccessTables } from './access-tables.ts';
import { ImageTables } from './image-tables.ts';
import { SqliteFileBackend, type StoreBackend } from './store-backend.ts';
import type { MigrationRun } from '../migration-run.ts';
import { deepFreeze } from '../../common/deep-freeze.ts';

export const DEFAULT_DB_PATH = './vnet.db';

/**
 * The controller's state: a SQL model (SQLite) read synchronously, durable
 * in a backend (store-backend.ts): the SQLite file itself (WAL mode, the
 * default), or etcd (etcd-backend.ts). Every method is one statement or one
 * transaction, so a crash at any moment leaves a consistent database;
 * `transaction(fn)` groups several calls into one. The schema is brought to
 * the newest version when the store opens. `committed()` says when the
 * writes so far are durable (at once on SQLite; after etcd's answer on etcd).
 *
 * The store holds facts and desired state; it decides nothing.
 */
export class ControllerStore {
  readonly db: Database;
  /** The database file, or the etcd endpoints and prefix. */
  readonly path: string;
  readonly backend: StoreBackend;
  /** API tokens, join tokens and host identities (access-tables.ts). */
  readonly access: AccessTables;
  /** Published image versions and their replicas (image-tables.ts, [images.md](../../../docs/images.md)). */
  readonly images: ImageTables;

  /** Statements prepared once per text: preparing is most of a small query's cost, and the per-report path runs a few per daemon each second. */
  readonly #statements = new Map<string, Statement>();
  /**
   * Each host's facts as last parsed, with the stored text they came from:
   * `listHosts` runs for every reconcile and hub watch, and parsing every
   * host's facts each time was a tenth of the controller's CPU while 600
   * daemons connected. Used only while the stored text is the same, so it
   * is never stale; frozen, since every caller shares the one object.
   */
  readonly #facts = new Map<string, { text: string; facts: DaemonFacts }>();

  constructor(db: Database, backend: StoreBackend) {
    this.db = db;
    this.backend = backend;
    this.path = backend.location;
    this.access = new AccessTables(db);
    this.images = new ImageTables(db);
  }

  #sql(text: string): Statement {
    let st = this.#statements.get(text);
    if (st === undefined) this.#statements.set(text, (st = this.db.prepare(text)));
    return st;
  }

  /** Resolves when every write made so far is durable in the backend; undefined when they already are (SQLite). */
  committed(): Promise<void> | undefined {
    return this.backend.committed();
  }

  /** Run `fn` in one IMMEDIATE transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    return this.db.transaction(fn).immediate();
  }

  /** `PRAGMA integrity_check`: ['ok'] for a sound database. */
  integrityCheck(): string[] {
    const rows = this.db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    return rows.map((r) => r.integrity_check);
  }

  /** Close the backend (an etcd store's pending writes are sent first) and the model. */
  close(): Promise<void> {
    const closing = this.backend.close();
    if (closing === undefined) {
      if (this.db.open) this.db.close();
      return Promise.resolve();
    }
    return closing.finally(() => { if (this.db.open) this.db.close(); });
  }

  // ---- hosts ------------------------------------------------------------

  upsertHost(h: Pick<HostRecord, 'id' | 'site' | 'role' | 'addresses'>): void {
    this.#sql(
      `INSERT INTO hosts (id, site, role, addresses) VALUES (?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET site = excluded.site, role = excluded.role, addresses = excluded.addresses`,
    ).run(h.id, h.site ?? null, h.role, JSON.stringify(h.addresses));
  }

  removeHost(id: string): void {
    this.#facts.delete(id);
    this.transaction(() => {
      this.#sql('DELETE FROM hosts WHERE id = ?').run(id);
      this.#sql('DELETE FROM desired_versions WHERE host = ?').run(id);
      this.#sql('DELETE FROM links WHERE a = ? OR b = ?').run(id, id);
      this.access.forgetHost(id);
    });
  }

  getHost(id: string): HostRecord | undefined {
    const row = this.#sql('SELECT * FROM hosts WHERE id = ?').get(id) as HostRow | undefined;
    return row === undefined ? undefined : this.#hostFromRow(row);
  }

  listHosts(): HostRecord[] {
    return (this.#sql('SELECT * FROM hosts ORDER BY id').all() as HostRow[]).map((r) => this.#hostFromRow(r));
  }

  #hostFromRow(r: HostRow): HostRecord {
    return hostFromRow(r, r.facts === null ? undefined : this.#parsedFacts(r.id, r.facts));
  }

  #parsedFacts(id: string, text: string): DaemonFacts {
    const known = this.#facts.get(id);
    if (known !== undefined && known.text === text) return known.facts;
    const facts = deepFreeze(JSON.parse(text) as DaemonFacts);
    this.#facts.set(id, { text, facts });
    return facts;
  }

  setHostConnected(id: string, connected: boolean, nowMs: number): void {
    this.#sql(
      `UPDATE hosts SET connected = ?, last_seen_ms = ?, first_seen_ms = COALESCE(first_seen_ms, ?) WHERE id = ?`,
    ).run(connected ? 1 : 0, nowMs, nowMs, id);
  }

  /** On start no daemon is connected yet, whatever the previous run left. */
  markAllHostsDisconnected(): void {
    this.#sql('UPDATE hosts SET connected = 0').run();
  }

  /**
   * Record what a daemon reported (its facts: ports, links and their state,
   * versions, listen address) and when. The control loop calls it when they
   * changed, not on every report: counters alone changing are the leader's
   * soft state (link-reports.ts), so the stored facts' counters are those of
   * the last change.
   */
  recordHostFacts(facts: DaemonFacts, nowMs: number): void {
    const addresses = facts.listen === undefined ? undefined : JSON.stringify([facts.listen]);
    this.#sql(
      `UPDATE hosts SET facts = ?, last_seen_ms = ?, addresses = COALESCE(?, addresses) WHERE id = ?`,
    ).run(JSON.stringify(facts), nowMs, addresses ?? null, facts.hostId);
  }

  // ---- VMs --------------------------------------------------------------

  upsertVm(vm: VmRecord): void {
    this.#sql(
      `INSERT INTO vms (mac, name, ip, host, state, source, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(mac) DO UPDATE SET name = COALESCE(excluded.name, name), ip = COALESCE(excluded.ip, ip),
         host = excluded.host, state = excluded.state, source = excluded.source, updated_ms = excluded.updated_ms`,
    ).run(vm.mac, vm.name ?? null, vm.ip ?? null, vm.host ?? null, vm.state, vm.source, vm.updatedMs);
  }

  getVm(mac: string): VmRecord | undefined {
    const row = this.#sql('SELECT * FROM vms WHERE mac = ?').get(mac) as VmRow | undefined;
    return row === undefined ? undefined : vmFromRow(row);
  }

  listVms(): VmRecord[] {
    return (this.#sql('SELECT * FROM vms ORDER BY mac').all() as VmRow[]).map(vmFromRow);
  }

  /** The VMs placed on one host (the vms_host index: rows read are that host's only). */
  listVmsOnHost(host: string): VmRecord[] {
    return (this.#sql('SELECT * FROM vms WHERE host = ? ORDER BY mac').all(host) as VmRow[]).map(vmFromRow);
  }

  removeVm(mac: string): void {
    this.#sql('DELETE FROM vms WHERE mac = ?').run(mac);
  }

  // ---- desired links ----------------------------------------------------

  /** Insert or update a desired link; the pair is stored ordered (a < b). Returns true if it is new. */
  putLink(link: Omit<LinkRecord, 'createdMs'>, nowMs: number): boolean {
    const [a, b] = link.a < link.b ? [link.a, link.b] : [link.b, link.a];
    return this.transaction(() => {
      const existing = this.#sql('SELECT 1 FROM links WHERE a = ? AND b = ? AND kind = ?').get(a, b, link.kind);
      if (existing !== undefined) {
        this.#sql('UPDATE links SET requested_by = ?, reason = ? WHERE a = ? AND b = ? AND kind = ?')
          .run(link.requestedBy, link.reason, a, b, link.kind);
        return false;
      }
      this.#sql('INSERT INTO links (a, b, kind, requested_by, reason, created_ms) VALUES (?, ?, ?, ?, ?, ?)')
        .run(a, b, link.kind, link.requestedBy, link.reason, nowMs);
      return true;
    });
  }

  /** Returns true if a link was removed. */
  deleteLink(a: string, b: string, kind: LinkKind): boolean {
    const [x, y] = a < b ? [a, b] : [b, a];
    return this.#sql('DELETE FROM links WHERE a = ? AND b = ? AND kind = ?').run(x, y, kind).changes > 0;
  }

  listLinks(kind?: LinkKind): LinkRecord[] {
    const rows = (kind === undefined
      ? this.#sql('SELECT * FROM links ORDER BY kind, a, b').all()
      : this.#sql('SELECT * FROM links WHERE kind = ? ORDER BY a, b').all(kind)) as LinkRow[];
    return rows.map((r) => ({ a: r.a, b: r.b, kind: r.kind as LinkKind, requestedBy: r.requested_by, reason: r.reason, createdMs: r.created_ms }));
  }

  // ---- desired versions (the rules themselves are derived: reconcile.ts) ---

  getVersions(host: string): DesiredVersions {
    const r = this.#sql('SELECT * FROM desired_versions WHERE host = ?').get(host) as VersionsRow | undefined;
    if (r === undefined) return { host, linksVersion: 0, linksDigest: '', rulesVersion: 0, rulesDigest: '', linksAcked: 0, rulesAcked: 0 };
    return {
      host, linksVersion: r.links_version, linksDigest: r.links_digest, rulesVersion: r.rules_version,
      rulesDigest: r.rules_digest, linksAcked: r.links_acked, rulesAcked: r.rules_acked,
    };
  }

  putVersions(v: DesiredVersions): void {
    this.#sql(
      `INSERT OR REPLACE INTO desired_versions (host, links_version, links_digest, rules_version, rules_digest, links_acked, rules_acked)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(v.host, v.linksVersion, v.linksDigest, v.rulesVersion, v.rulesDigest, v.linksAcked, v.rulesAcked);
  }

  recordAck(host: string, kind: 'links' | 'rules', version: number): void {
    const col = kind === 'links' ? 'links_acked' : 'rules_acked';
    this.#sql(`INSERT INTO desired_versions (host, ${col}) VALUES (?, ?) ON CONFLICT(host) DO UPDATE SET ${col} = excluded.${col}`)
      .run(host, version);
  }

  // ---- traffic and topologies -------------------------------------------

  /** Samples go in one record per report (host and period): a report is one row, one etcd key, whatever its size. */
  insertTrafficSamples(samples: readonly TrafficSampleRecord[]): void {
    if (samples.length === 0) return;
    const reports = new Map<string, { host: string; startMs: number; endMs: number; entries: Array<[string, string, number, number]> }>();
    for (const x of samples) {
      const key = `${x.host}\t${x.startMs}\t${x.endMs}`;
      let r = reports.get(key);
      if (r === undefined) reports.set(key, (r = { host: x.host, startMs: x.startMs, endMs: x.endMs, entries: [] }));
      r.entries.push([x.src, x.dst, x.frames, x.bytes]);
    }
    this.transaction(() => {
      const ins = this.#sql('INSERT INTO traffic_reports (host, start_ms, end_ms, entries) VALUES (?, ?, ?, ?)');
      for (const r of reports.values()) ins.run(r.host, r.startMs, r.endMs, JSON.stringify(r.entries));
    });
  }

  /** Samples whose period ended after `sinceMs` (exclusive), oldest first. */
  trafficSince(sinceMs: number): TrafficSampleRecord[] {
    const rows = this.#sql('SELECT * FROM traffic_reports WHERE end_ms > ? ORDER BY end_ms, id').all(sinceMs) as TrafficRow[];
    return rows.flatMap((r) => (JSON.parse(r.entries) as Array<[string, string, number, number]>).map(([src, dst, frames, bytes]) => ({
      host: r.host, startMs: r.start_ms, endMs: r.end_ms, src, dst, frames, bytes,
    })));
  }

  /** Drops the reports whose period ended before `beforeMs`; returns how many samples (pairs) went with them. */
  pruneTraffic(beforeMs: number): number {
    const n = this.#sql('SELECT COALESCE(SUM(json_array_length(entries)), 0) AS n FROM traffic_reports WHERE end_ms < ?').get(beforeMs) as { n: number };
    if (n.n > 0) this.#sql('DELETE FROM traffic_reports WHERE end_ms < ?').run(beforeMs);
    return n.n;
  }

  insertTopology(t: Omit<TopologyRecord, 'id'>): number {
    const r = this.#sql('INSERT INTO topologies (at_ms, kind, changed, body) VALUES (?, ?, ?, ?)')
      .run(t.atMs, t.kind, t.changed ? 1 : 0, JSON.stringify(t.body));
    return Number(r.lastInsertRowid);
  }

  latestTopology(): TopologyRecord | undefined {
    const r = this.#sql('SELECT * FROM topologies ORDER BY id DESC LIMIT 1').get() as TopologyRow | undefined;
    return r === undefined ? undefined : { id: r.id, atMs: r.at_ms, kind: r.kind, changed: r.changed === 1, body: JSON.parse(r.body) };
  }

  // ---- VM migrations ------------------------------------------------------

  insertMigration(m: MigrationRecord): void {
    this.#sql(
      `INSERT INTO vm_migrations (id, vm_mac, from_host, to_host, state, requested_by, started_ms, finished_ms, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(m.id, m.vmMac, m.fromHost, m.toHost, m.state, m.requestedBy, m.startedMs, m.finishedMs ?? null, m.error ?? null);
  }

  /** Insert or replace a migration with the coordinator's record of it (one statement). */
  putMigration(m: MigrationRecord): void {
    this.#sql(
      `INSERT INTO vm_migrations (id, vm_mac, from_host, to_host, state, requested_by, started_ms, finished_ms, error, run)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET state = excluded.state, finished_ms = excluded.finished_ms, error = excluded.error, run = excluded.run`,
    ).run(m.id, m.vmMac, m.fromHost, m.toHost, m.state, m.requestedBy, m.startedMs, m.finishedMs ?? null, m.error ?? null,
      m.run === undefined ? null : JSON.stringify(m.run));
  }

  /** Migrations the coordinator still has work on (running, aborting, or a finished one whose cleanup is pending), oldest first. */
  listOpenMigrations(): MigrationRecord[] {
    return (this.#sql(
      `SELECT * FROM vm_migrations WHERE state IN ('pending', 'running', 'aborting')
         OR (run IS NOT NULL AND json_extract(run, '$.step') = 'cleanup') ORDER BY started_ms, id`,
    ).all() as MigrationRow[]).map(migrationFromRow);
  }

  /**
   * Run `fn` in one transaction that survives a power failure once durable:
   * on SQLite it is on disk when this returns (synchronous = FULL for it; the
   * store runs at NORMAL otherwise, durable across a crash of the process
   * only); on etcd once `committed()` resolves. The migration coordinator's
   * commit point is written this way.
   */
  durableTransaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    return this.backend.durableTransaction(this.db, fn);
  }

  setMigrationState(id: string, state: MigrationState, nowMs: number, error?: string): void {
    const done = state === 'done' || state === 'failed' || state === 'cancelled';
    this.#sql('UPDATE vm_migrations SET state = ?, finished_ms = ?, error = ? WHERE id = ?')
      .run(state, done ? nowMs : null, error ?? null, id);
  }

  appendMigrationStep(s: Omit<MigrationStepRecord, 'id'>): number {
    const r = this.#sql('INSERT INTO migration_steps (migration_id, step, state, at_ms, detail) VALUES (?, ?, ?, ?, ?)')
      .run(s.migrationId, s.step, s.state, s.atMs, JSON.stringify(s.detail ?? {}));
    return Number(r.lastInsertRowid);
  }

  getMigration(id: string): MigrationRecord | undefined {
    const r = this.#sql('SELECT * FROM vm_migrations WHERE id = ?').get(id) as MigrationRow | undefined;
    return r === undefined ? undefined : migrationFromRow(r);
  }

  listMigrations(limit = 100): MigrationRecord[] {
    return (this.#sql('SELECT * FROM vm_migrations ORDER BY started_ms DESC, id LIMIT ?').all(limit) as MigrationRow[]).map(migrationFromRow);
  }

  migrationSteps(id: string): MigrationStepRecord[] {
    return (this.#sql('SELECT * FROM migration_steps WHERE migration_id = ? ORDER BY id').all(id) as StepRow[]).map((r) => ({
      id: r.id, migrationId: r.migration_id, step: r.step, state: r.state, atMs: r.at_ms, detail: JSON.parse(r.detail),
    }));
  }

  // ---- audit log and events ---------------------------------------------

  appendAudit(a: Omit<AuditRecord, 'id'>): number {
    const r = this.#sql('INSERT INTO audit_log (at_ms, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)')
      .run(a.atMs, a.actor, a.action, a.target, JSON.stringify(a.detail ?? {}));
    return Number(r.lastInsertRowid);
  }

  listAudit(limit = 100): AuditRecord[] {
    return (this.#sql('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit) as AuditRow[]).map((r) => ({
      id: r.id, atMs: r.at_ms, actor: r.actor, action: r.action, target: r.target, detail: JSON.parse(r.detail),
    }));
  }

  appendEvent(e: Omit<EventRecord, 'id'>): number {
    const r = this.#sql('INSERT INTO events (at_ms, type, data) VALUES (?, ?, ?)').run(e.atMs, e.type, JSON.stringify(e.data ?? {}));
    return Number(r.lastInsertRowid);
  }

  /** Events with id > afterId, oldest first, at most `limit`. */
  listEvents(afterId = 0, limit = 100): EventRecord[] {
    return (this.#sql('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as EventRow[]).map((r) => ({
      id: r.id, atMs: r.at_ms, type: r.type, data: JSON.parse(r.data),
    }));
  }
}

/** Open (creating if needed) the database at `path`, in WAL mode, migrated to the newest schema. */
export function openStore(init: { path?: string; logger?: Logger } = {}): ControllerStore {
  const path = init.path ?? DEFAULT_DB_PATH;
  let db: Database;
  try {
    db = new BetterSqlite3(path);
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    if (path !== ':memory:') db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    applyMigrations(db, SCHEMA_MIGRATIONS, init.logger);
  } catch (err) {
    db.close();
    throw err;
  }
  return new ControllerStore(db, new SqliteFileBackend(path));
}

// ---- row mapping -----------------------------------------------------------

interface HostRow { id: string; site: string | null; role: string; addresses: string; connected: number; first_seen_ms: number | null; last_seen_ms: number | null; facts: string | null }
interface VmRow { mac: string; name: string | null; ip: string | null; host: string | null; state: string; source: string; updated_ms: number }
interface LinkRow { a: string; b: string; kind: string; requested_by: string; reason: string; created_ms: number }
interface VersionsRow { host: string; links_version: number; links_digest: string; rules_version: number; rules_digest: string; links_acked: number; rules_acked: number }
interface TrafficRow { id: number; host: string; start_ms: number; end_ms: number; entries: string }
interface TopologyRow { id: number; at_ms: number; kind: string; changed: number; body: string }
interface MigrationRow { id: string; vm_mac: string; from_host: string; to_host: string; state: string; requested_by: string; started_ms: number; finished_ms: number | null; error: string | null; run: string | null }
interface StepRow { id: number; migration_id: string; step: string; state: string; at_ms: number; detail: string }
interface AuditRow { id: number; at_ms: number; actor: string; action: string; target: string; detail: string }
interface EventRow { id: number; at_ms: number; type: string; data: string }

function hostFromRow(r: HostRow, facts: DaemonFacts | undefined): HostRecord {
  return {
    id: r.id, site: r.site ?? undefined, role: r.role === 'hub' ? 'hub' : 'spoke', addresses: JSON.parse(r.addresses) as HostRecord['addresses'],
    connected: r.connected === 1, firstSeenMs: r.first_seen_ms ?? undefined, lastSeenMs: r.last_seen_ms ?? undefined, facts,
  };
}

function vmFromRow(r: VmRow): VmRecord {
  return {
    mac: r.mac, name: r.name ?? undefined, ip: r.ip ?? undefined, host: r.host ?? undefined,
    state: r.state as VmRecord['state'], source: r.source as VmRecord['source'], updatedMs: r.updated_ms,
  };
}

function migrationFromRow(r: MigrationRow): MigrationRecord {
  return {
    id: r.id, vmMac: r.vm_mac, fromHost: r.from_host, toHost: r.to_host, state: r.state as MigrationState,
    requestedBy: r.requested_by, startedMs: r.started_ms, finishedMs: r.finished_ms ?? undefined, error: r.error ?? undefined,
    run: r.run === null ? undefined : JSON.parse(r.run) as MigrationRun,
  };
}
