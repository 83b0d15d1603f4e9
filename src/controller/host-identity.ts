import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { ControllerStore } from './store/store.ts';

/**
 * A host's identity at the controller: the certificates it has connected
 * with (signed by the deployment CA, recorded by SHA-256 fingerprint at each
 * use) and the credential it was issued at a join (a random secret, stored
 * hashed, presented on every later hello). A host with an identity is not
 * taken over by a join token; revoking it (`revokeHostIdentity`) forgets the
 * credential and refuses the certificates it used, after which the host
 * comes back only with a new join token or a newly issued certificate.
 */

const CREDENTIAL_PREFIX = 'vnetc_';

/** SHA-256 hex of a secret: what the store keeps of join tokens and credentials (the secrets have full entropy). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Issue a fresh host credential (replacing any earlier one) and return its text. */
export function issueHostCredential(store: ControllerStore, hostId: string, nowMs: number): string {
  const credential = CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
  store.access.setHostCredential(hostId, hashSecret(credential), nowMs);
  return credential;
}

/** Whether `credential` is the one issued to `hostId` (compared in constant time); a match records the use. */
export function verifyHostCredential(store: ControllerStore, hostId: string, credential: string, nowMs: number): boolean {
  const stored = store.access.hostCredential(hostId);
  if (stored === undefined) return false;
  const a = Buffer.from(stored.hash, 'hex');
  const b = Buffer.from(hashSecret(credential), 'hex');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return false;
  store.access.touchHostCredential(hostId, nowMs);
  return true;
}

/**
 * A CA-signed certificate naming `hostId` was presented: false if it was
 * revoked; otherwise its use is recorded (it is now an identity of the host).
 */
export function acceptHostCertificate(store: ControllerStore, hostId: string, fingerprint: string, nowMs: number): boolean {
  return store.transaction(() => {
    if (store.access.hostCertificate(hostId, fingerprint)?.revokedMs !== undefined) return false;
    store.access.touchHostCertificate(hostId, fingerprint, nowMs);
    return true;
  });
}

/**
 * Certificates issued to hosts of the deployment (found in the controller's
 * TLS directory at start): each becomes an identity of its host before the
 * host first connects, so that no join token can take the host over.
 */
export function recordIssuedCertificates(store: ControllerStore, certificates: ReadonlyArray<{ host: string; fingerprint: string }>, nowMs: number): void {
  store.transaction(() => {
    for (const c of certificates) {
      if (store.getHost(c.host) !== undefined) store.access.recordHostCertificate(c.host, c.fingerprint, nowMs);
    }
  });
}

/** Forget the host's credential and revoke its certificates (one transaction); says what there was. */
export function revokeHostIdentity(store: ControllerStore, hostId: string, nowMs: number): { credential: boolean; certificates: number } {
  return store.transaction(() => ({
    credential: store.access.deleteHostCredential(hostId),
    certificates: store.access.revokeHostCertificates(hostId, nowMs),
  }));
}

/** What a daemon's TLS client certificate says: whether it chains to the deployment CA, the host names it carries, its fingerprint. */
export interface PeerCertificateIdentity {
  authorized: boolean;
  /** CN and DNS subjectAltNames. */
  names: string[];
  /** SHA-256, colon-separated hex ('' without a valid certificate). */
  fingerprint: string;
  /** Why a presented certificate was not accepted by TLS. */
  error: string | undefined;
}

export function peerCertificateIdentity(tls: TLSSocket): PeerCertificateIdentity {
  const cert = tls.getPeerCertificate?.();
  const present = cert !== undefined && cert !== null && Object.keys(cert).length > 0;
  if (!present) return { authorized: false, names: [], fingerprint: '', error: undefined };
  if (!tls.authorized) return { authorized: false, names: [], fingerprint: '', error: String(tls.authorizationError ?? 'not authorized') };
  const names: string[] = [];
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...(cn as string[]));
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m?.[1] !== undefined) names.push(m[1].trim());
  }
  return { authorized: true, names, fingerprint: cert.fingerprint256, error: undefined };
}
