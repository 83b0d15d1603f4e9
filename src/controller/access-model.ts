import type { ApiScope } from './store/records.ts';

/**
 * Access as the operator manages it through the API: join tokens, the
 * identities hosts authenticate with (issued credentials and certificates),
 * and the API's own tokens. Views follow api-model.ts's conventions (plain
 * JSON, null for absent, wall-clock ms). No view carries a secret except the
 * one returned by a create, once.
 */

export type { ApiScope };

export interface JoinTokenRequest {
  /** The one host that may use the token; required unless anyHost. */
  host?: string | undefined;
  /** Explicitly: any host of the deployment may use it. */
  anyHost?: boolean | undefined;
  /** Lifetime; the controller's default (one hour) if absent. */
  ttlMs?: number | undefined;
  /** Default true. */
  singleUse?: boolean | undefined;
}

export type JoinTokenState = 'valid' | 'used' | 'expired' | 'revoked';

export interface JoinTokenInfo {
  id: string;
  /** null: any host of the deployment. */
  host: string | null;
  createdAt: number;
  expiresAt: number | null;
  singleUse: boolean;
  state: JoinTokenState;
  /** The last use and by which host, null if never used. */
  usedAt: number | null;
  usedBy: string | null;
  revokedAt: number | null;
}

/** A token just created: the secret, shown once. */
export interface JoinTokenView extends JoinTokenInfo {
  token: string;
}

export type HostIdentityKind = 'credential' | 'certificate';

export interface HostIdentityView {
  host: string;
  kind: HostIdentityKind;
  /** A credential: the first 12 hex digits of its hash; a certificate: its SHA-256 fingerprint. */
  id: string;
  /** When it was issued (credential) or first seen (certificate). */
  since: number;
  lastUsedAt: number | null;
  /** Certificates only: revoked ones stay listed (refused). */
  revokedAt: number | null;
  /** Whether the host has a control session now. */
  connected: boolean;
}

export interface RevokedHostView {
  host: string;
  /** Whether there was a credential (now forgotten), and how many certificates were revoked. */
  credential: boolean;
  certificates: number;
  /** Whether a live control session was closed. */
  sessionClosed: boolean;
}

export interface ApiTokenView {
  id: string;
  label: string;
  scope: ApiScope;
  createdAt: number;
  revokedAt: number | null;
}

/** A token just created: the secret, shown once. */
export interface CreatedApiTokenView extends ApiTokenView {
  token: string;
}

/**
 * The controller's access commands. Errors carry the codes of api-model.ts:
 * VNET_ERR_NOT_FOUND (404), VNET_ERR_INVALID_ARGUMENT (400), VNET_ERR_CONFLICT (409).
 */
export interface AccessCommands {
  createJoinToken(request: JoinTokenRequest, actor: string): Promise<JoinTokenView>;
  listJoinTokens(): JoinTokenInfo[];
  /** Throws NotFound for an unknown id, Conflict when it was revoked already. */
  revokeJoinToken(id: string, actor: string): Promise<JoinTokenInfo>;
  listHostIdentities(): HostIdentityView[];
  /** Forget the host's credential, revoke its certificates and close its session at once. NotFound when it has none of them. */
  revokeHostIdentity(host: string, actor: string): Promise<RevokedHostView>;
  /** Audit an access action done outside these commands (API tokens) and emit its operator-action event. */
  recordOperatorAction(actor: string, action: string, target: string, detail: Record<string, unknown>): void;
}
