import type {
  AccessCommands, HostIdentityView, JoinTokenInfo, JoinTokenRequest, JoinTokenView, RevokedHostView,
} from './access-model.ts';
import type { ControllerEventLog } from './event-log.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import { revokeHostIdentity } from './host-identity.ts';
import { createJoinToken, DEFAULT_JOIN_TOKEN_TTL_MS, joinTokenState } from './join-tokens.ts';
import type { JoinTokenRecord } from './store/records.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * The operator's access commands (access-model.ts) over the store: join
 * tokens, host identities, and the audit of API token actions. Each command
 * writes in one transaction with its audit record, then emits its
 * `operator-action` event. Revoking a host's identity also closes its live
 * control session, at once, through `sessions`.
 */

/** What the access service needs of the control channel. */
export interface SessionDirectory {
  connectedHosts(): string[];
  /** Close the host's session now; false if it had none. */
  disconnectHost(hostId: string, why: string): boolean;
}

export interface AccessServiceComponents {
  store: ControllerStore;
  events: ControllerEventLog;
  sessions: SessionDirectory;
  wallClock: () => number;
}

export class AccessService implements AccessCommands {
  readonly #c: AccessServiceComponents;
  readonly #ttlMs: number;

  constructor(components: AccessServiceComponents, init: { joinTokenTtlMs?: number | undefined } = {}) {
    this.#c = components;
    this.#ttlMs = init.joinTokenTtlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
  }

  async createJoinToken(request: JoinTokenRequest, actor: string): Promise<JoinTokenView> {
    const { store, wallClock } = this.#c;
    if (request.host !== undefined && store.getHost(request.host) === undefined) throw new NotFoundError(`host ${JSON.stringify(request.host)}`);
    const now = wallClock();
    const { token, record } = store.transaction(() => {
      const created = createJoinToken(store, request, now, this.#ttlMs);
      this.#audit(now, actor, 'create-join-token', created.record.id, {
        host: created.record.host ?? null, expiresAt: created.record.expiresMs ?? null, singleUse: created.record.singleUse,
      });
      return created;
    });
    this.#c.events.emit('operator-action', { actor, action: 'create-join-token', detail: { id: record.id, host: record.host ?? null } });
    return { token, ...joinTokenInfo(record, now) };
  }

  listJoinTokens(): JoinTokenInfo[] {
    const now = this.#c.wallClock();
    return this.#c.store.access.listJoinTokens().map((r) => joinTokenInfo(r, now));
  }

  async revokeJoinToken(id: string, actor: string): Promise<JoinTokenInfo> {
    const { store, wallClock } = this.#c;
    const now = wallClock();
    const record = store.transaction(() => {
      const found = store.access.getJoinToken(id);
      if (found === undefined) throw new NotFoundError(`join token ${JSON.stringify(id)}`);
      if (!store.access.revokeJoinToken(id, now)) throw new ConflictError(`join token ${id} was revoked already`);
      this.#audit(now, actor, 'revoke-join-token', id, { host: found.host ?? null });
      return { ...found, revokedMs: now };
    });
    this.#c.events.emit('operator-action', { actor, action: 'revoke-join-token', detail: { id } });
    return joinTokenInfo(record, now);
  }

  listHostIdentities(): HostIdentityView[] {
    const { store, sessions } = this.#c;
    const connected = new Set(sessions.connectedHosts());
    const credentials: HostIdentityView[] = store.access.listHostCredentials().map((c) => ({
      host: c.host, kind: 'credential', id: c.hash.slice(0, 12), since: c.createdMs, lastUsedAt: c.lastUsedMs ?? null, revokedAt: null, connected: connected.has(c.host),
    }));
    const certificates: HostIdentityView[] = store.access.listHostCertificates().map((c) => ({
      host: c.host, kind: 'certificate', id: c.fingerprint, since: c.firstSeenMs, lastUsedAt: c.lastUsedMs ?? null, revokedAt: c.revokedMs ?? null, connected: connected.has(c.host),
    }));
    return [...credentials, ...certificates].sort((a, b) => (a.host === b.host ? a.since - b.since : a.host < b.host ? -1 : 1));
  }

  async revokeHostIdentity(host: string, actor: string): Promise<RevokedHostView> {
    const { store, wallClock, sessions } = this.#c;
    if (store.getHost(host) === undefined) throw new NotFoundError(`host ${JSON.stringify(host)}`);
    const now = wallClock();
    const revoked = store.transaction(() => {
      const r = revokeHostIdentity(store, host, now);
      if (!r.credential && r.certificates === 0) throw new NotFoundError(`a credential or certificate of host ${host} to revoke`);
      this.#audit(now, actor, 'revoke-host-identity', host, { credential: r.credential, certificates: r.certificates });
      return r;
    });
    // After the commit: the daemon's next hello already finds its identity gone.
    const sessionClosed = sessions.disconnectHost(host, `identity revoked by ${actor}`);
    this.#c.events.emit('operator-action', { actor, action: 'revoke-host-identity', detail: { host, ...revoked, sessionClosed } });
    return { host, ...revoked, sessionClosed };
  }

  recordOperatorAction(actor: string, action: string, target: string, detail: Record<string, unknown>): void {
    this.#audit(this.#c.wallClock(), actor, action, target, detail);
    this.#c.events.emit('operator-action', { actor, action, detail: { target, ...detail } });
  }

  #audit(atMs: number, actor: string, action: string, target: string, detail: Record<string, unknown>): void {
    this.#c.store.appendAudit({ atMs, actor, action, target, detail });
  }
}

function joinTokenInfo(r: JoinTokenRecord, nowMs: number): JoinTokenInfo {
  return {
    id: r.id, host: r.host ?? null, createdAt: r.createdMs, expiresAt: r.expiresMs ?? null, singleUse: r.singleUse,
    state: joinTokenState(r, nowMs), usedAt: r.usedMs ?? null, usedBy: r.usedBy ?? null, revokedAt: r.revokedMs ?? null,
  };
}
