import type { Database } from 'better-sqlite3';
import type { ApiScope, ApiTokenRecord, HostCertificateRecord, HostCredentialRecord, JoinTokenRecord } from './records.ts';

/**
 * The store's access tables: API tokens (`api_tokens`), join tokens
 * (`join_tokens`), the credential issued to each host at its join
 * (`host_credentials`) and the certificates hosts have authenticated with
 * (`host_certificates`). Secrets are never stored: only their SHA-256 (and a
 * certificate's fingerprint). Every method is one statement; callers group
 * them with `ControllerStore.transaction`.
 */
export class AccessTables {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  // ---- API tokens -----------------------------------------------------------

  insertApiToken(t: Omit<ApiTokenRecord, 'revokedMs'>): void {
    this.#db.prepare('INSERT INTO api_tokens (id, hash, label, scope, created_ms) VALUES (?, ?, ?, ?, ?)').run(t.id, t.hash, t.label, t.scope, t.createdMs);
  }

  findApiTokenByHash(hash: string): ApiTokenRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM api_tokens WHERE hash = ?').get(hash) as ApiTokenRow | undefined;
    return r === undefined ? undefined : apiTokenFromRow(r);
  }

  listApiTokens(): ApiTokenRecord[] {
    return (this.#db.prepare('SELECT * FROM api_tokens ORDER BY created_ms, id').all() as ApiTokenRow[]).map(apiTokenFromRow);
  }

  /** False when there is no such token or it was already revoked. */
  revokeApiToken(id: string, nowMs: number): boolean {
    return this.#db.prepare('UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL').run(nowMs, id).changes > 0;
  }

  // ---- join tokens ------------------------------------------------------------

  insertJoinToken(t: JoinTokenRecord): void {
    this.#db.prepare(
      `INSERT INTO join_tokens (id, hash, host, created_ms, expires_ms, single_use, used_ms, used_by, revoked_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(t.id, t.hash, t.host ?? null, t.createdMs, t.expiresMs ?? null, t.singleUse ? 1 : 0, t.usedMs ?? null, t.usedBy ?? null, t.revokedMs ?? null);
  }

  findJoinTokenByHash(hash: string): JoinTokenRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM join_tokens WHERE hash = ?').get(hash) as JoinTokenRow | undefined;
    return r === undefined ? undefined : joinTokenFromRow(r);
  }

  getJoinToken(id: string): JoinTokenRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM join_tokens WHERE id = ?').get(id) as JoinTokenRow | undefined;
    return r === undefined ? undefined : joinTokenFromRow(r);
  }

  listJoinTokens(): JoinTokenRecord[] {
    return (this.#db.prepare('SELECT * FROM join_tokens ORDER BY created_ms, id').all() as JoinTokenRow[]).map(joinTokenFromRow);
  }

  /** Record a use (the first use of a single-use token, or each use of a multi-use one: the last is kept); false if a single-use token was used meanwhile. */
  markJoinTokenUsed(id: string, host: string, nowMs: number, singleUse: boolean): boolean {
    const sql = singleUse
      ? 'UPDATE join_tokens SET used_ms = ?, used_by = ? WHERE id = ? AND used_ms IS NULL'
      : 'UPDATE join_tokens SET used_ms = ?, used_by = ? WHERE id = ?';
    return this.#db.prepare(sql).run(nowMs, host, id).changes > 0;
  }

  revokeJoinToken(id: string, nowMs: number): boolean {
    return this.#db.prepare('UPDATE join_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL').run(nowMs, id).changes > 0;
  }

  // ---- host credentials and certificates ---------------------------------------

  setHostCredential(host: string, hash: string, nowMs: number): void {
    this.#db.prepare('INSERT OR REPLACE INTO host_credentials (host, hash, created_ms, last_used_ms) VALUES (?, ?, ?, NULL)').run(host, hash, nowMs);
  }

  hostCredential(host: string): HostCredentialRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM host_credentials WHERE host = ?').get(host) as CredentialRow | undefined;
    return r === undefined ? undefined : credentialFromRow(r);
  }

  listHostCredentials(): HostCredentialRecord[] {
    return (this.#db.prepare('SELECT * FROM host_credentials ORDER BY host').all() as CredentialRow[]).map(credentialFromRow);
  }

  touchHostCredential(host: string, nowMs: number): void {
    this.#db.prepare('UPDATE host_credentials SET last_used_ms = ? WHERE host = ?').run(nowMs, host);
  }

  /** Forget the host's credential: it is refused from now on. False if it had none. */
  deleteHostCredential(host: string): boolean {
    return this.#db.prepare('DELETE FROM host_credentials WHERE host = ?').run(host).changes > 0;
  }

  hostCertificate(host: string, fingerprint: string): HostCertificateRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM host_certificates WHERE host = ? AND fingerprint = ?').get(host, fingerprint) as CertificateRow | undefined;
    return r === undefined ? undefined : certificateFromRow(r);
  }

  /** Record a use of a (not revoked) certificate. */
  touchHostCertificate(host: string, fingerprint: string, nowMs: number): void {
    this.#db.prepare(
      `INSERT INTO host_certificates (host, fingerprint, first_seen_ms, last_used_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT(host, fingerprint) DO UPDATE SET last_used_ms = excluded.last_used_ms`,
    ).run(host, fingerprint, nowMs, nowMs);
  }

  /** A certificate issued to the host (seen in the controller's TLS directory): recorded unless known already. */
  recordHostCertificate(host: string, fingerprint: string, nowMs: number): void {
    this.#db.prepare('INSERT OR IGNORE INTO host_certificates (host, fingerprint, first_seen_ms) VALUES (?, ?, ?)').run(host, fingerprint, nowMs);
  }

  listHostCertificates(): HostCertificateRecord[] {
    return (this.#db.prepare('SELECT * FROM host_certificates ORDER BY host, first_seen_ms').all() as CertificateRow[]).map(certificateFromRow);
  }

  /** Revoke every certificate the host has used; returns how many were still valid. */
  revokeHostCertificates(host: string, nowMs: number): number {
    return this.#db.prepare('UPDATE host_certificates SET revoked_ms = ? WHERE host = ? AND revoked_ms IS NULL').run(nowMs, host).changes;
  }

  /** Whether the host has an identity a join token must not replace: a credential, or a certificate that is not revoked. */
  hostHasIdentity(host: string): boolean {
    if (this.hostCredential(host) !== undefined) return true;
    return this.#db.prepare('SELECT 1 FROM host_certificates WHERE host = ? AND revoked_ms IS NULL').get(host) !== undefined;
  }

  /** A host left the deployment: its credential and its certificates' records go (revoked certificates stay refused). */
  forgetHost(host: string): void {
    this.#db.prepare('DELETE FROM host_credentials WHERE host = ?').run(host);
    this.#db.prepare('DELETE FROM host_certificates WHERE host = ? AND revoked_ms IS NULL').run(host);
  }
}

interface ApiTokenRow { id: string; hash: string; label: string; scope: string; created_ms: number; revoked_ms: number | null }
interface JoinTokenRow {
  id: string; hash: string; host: string | null; created_ms: number; expires_ms: number | null; single_use: number;
  used_ms: number | null; used_by: string | null; revoked_ms: number | null;
}
interface CredentialRow { host: string; hash: string; created_ms: number; last_used_ms: number | null }
interface CertificateRow { host: string; fingerprint: string; first_seen_ms: number; last_used_ms: number | null; revoked_ms: number | null }

function apiTokenFromRow(r: ApiTokenRow): ApiTokenRecord {
  // Anything but 'read' keeps the full rights it had before scopes existed.
  const scope: ApiScope = r.scope === 'read' ? 'read' : 'operator';
  return { id: r.id, hash: r.hash, label: r.label, scope, createdMs: r.created_ms, revokedMs: r.revoked_ms ?? undefined };
}

function joinTokenFromRow(r: JoinTokenRow): JoinTokenRecord {
  return {
    id: r.id, hash: r.hash, host: r.host ?? undefined, createdMs: r.created_ms, expiresMs: r.expires_ms ?? undefined,
    singleUse: r.single_use === 1, usedMs: r.used_ms ?? undefined, usedBy: r.used_by ?? undefined, revokedMs: r.revoked_ms ?? undefined,
  };
}

function credentialFromRow(r: CredentialRow): HostCredentialRecord {
  return { host: r.host, hash: r.hash, createdMs: r.created_ms, lastUsedMs: r.last_used_ms ?? undefined };
}

function certificateFromRow(r: CertificateRow): HostCertificateRecord {
  return { host: r.host, fingerprint: r.fingerprint, firstSeenMs: r.first_seen_ms, lastUsedMs: r.last_used_ms ?? undefined, revokedMs: r.revoked_ms ?? undefined };
}
