import { createHmac, createPrivateKey, randomBytes, sign, timingSafeEqual, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TlsCredentials } from '../pki/certs.ts';
import { LinkKeyError } from './errors.ts';
import { certificateNames } from './link-handshake.ts';
import { NONCE_BYTES, PROTOCOL_VERSION, type AuthMessage, type AuthMethod, type LinkKind, type LinkRole } from './wire-messages.ts';

/**
 * Authentication of plain TCP links (TLS links are authenticated by their
 * certificates). The frames stay in clear — this is for a trusted underlay —
 * but no host gets a link without proving its host id, in the manner of
 * tinc's and WireGuard's handshakes:
 *
 *   nonces      each side puts NONCE_BYTES fresh random bytes in its hello.
 *   transcript  both nonces, both host ids, the link kind, the method and the
 *               protocol version, and the role of the side that proves
 *               (`handshakeTranscript`): a proof fits one handshake, one
 *               direction, and nothing else. A recorded handshake replayed
 *               meets a fresh nonce from the other side and fails; a proof
 *               reflected back to its author names the wrong role.
 *   proof       `certificate`: an ECDSA signature with the host certificate's
 *               key, sent with the certificate, which must be signed by the
 *               deployment CA, be in its validity period and name the host id
 *               (per-host identity: the strong default). `link-key`: an
 *               HMAC-SHA256 with the deployment's shared link key — it proves
 *               membership of the deployment, not which host one is.
 *   order       the listener proves first (hello, then auth), only after it has
 *               accepted the dialer's claimed id; the dialer checks that proof,
 *               then sends its own, and the listener opens the link only once
 *               it has checked it (link-handshake.ts runs the exchange).
 */

export interface LinkAuthenticator {
  readonly method: Exclude<AuthMethod, 'none'>;
  /** Our auth message (certificate and proof) over `transcript`. */
  prove(transcript: Buffer): Omit<AuthMessage, 'type'>;
  /** Why the peer's auth does not prove `peerHost` over `transcript` (undefined: it does). */
  check(transcript: Buffer, auth: AuthMessage, peerHost: string, nowMs: number): string | undefined;
}

/** What a proof covers. */
export interface TranscriptInput {
  kind: LinkKind;
  method: AuthMethod;
  dialer: { hostId: string; nonce: Buffer };
  listener: { hostId: string; nonce: Buffer };
}

const TRANSCRIPT_LABEL = Buffer.from('vnet link auth\0', 'latin1');
const ROLE_LABEL: Record<LinkRole, number> = { dialer: 1, listener: 2 };

/** The bytes the side in `role` proves: label, version, kind, method, both ids (length-prefixed), both nonces, role. */
export function handshakeTranscript(t: TranscriptInput, role: LinkRole): Buffer {
  const d = Buffer.from(t.dialer.hostId, 'latin1');
  const l = Buffer.from(t.listener.hostId, 'latin1');
  const fixed = Buffer.from([PROTOCOL_VERSION, t.kind === 'backbone' ? 1 : 2, t.method === 'link-key' ? 1 : t.method === 'certificate' ? 2 : 0]);
  return Buffer.concat([TRANSCRIPT_LABEL, fixed, Buffer.from([d.length]), d, Buffer.from([l.length]), l, t.dialer.nonce, t.listener.nonce, Buffer.from([ROLE_LABEL[role]])]);
}

export function freshNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** Smallest link key accepted, in bytes. */
export const MIN_LINK_KEY_BYTES = 32;

/** HMAC-SHA256 with the deployment's link key: authenticates membership of the deployment, not the individual host. */
export class LinkKeyAuthenticator implements LinkAuthenticator {
  readonly method = 'link-key' as const;
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < MIN_LINK_KEY_BYTES) throw new LinkKeyError(`a link key is at least ${MIN_LINK_KEY_BYTES} bytes, this one is ${key.length}`, undefined);
    this.#key = Buffer.from(key);
  }

  prove(transcript: Buffer): Omit<AuthMessage, 'type'> {
    return { certificate: Buffer.alloc(0), proof: createHmac('sha256', this.#key).update(transcript).digest() };
  }

  check(transcript: Buffer, auth: AuthMessage): string | undefined {
    if (auth.certificate.length !== 0) return 'a link-key proof carries no certificate';
    const want = createHmac('sha256', this.#key).update(transcript).digest();
    if (auth.proof.length !== want.length || !timingSafeEqual(auth.proof, want)) return 'link-key proof does not verify (another deployment key, or a replayed handshake)';
    return undefined;
  }
}

/** A signature with the host certificate's key, the certificate signed by the deployment CA and naming the host id. */
export class CertificateAuthenticator implements LinkAuthenticator {
  readonly method = 'certificate' as const;
  readonly #ca: X509Certificate;
  readonly #cert: X509Certificate;
  readonly #key: KeyObject;

  constructor(credentials: TlsCredentials) {
    try {
      this.#ca = new X509Certificate(credentials.ca);
      this.#cert = new X509Certificate(credentials.cert);
      this.#key = createPrivateKey(credentials.key);
    } catch (err) {
      throw new LinkKeyError(`host certificate material does not parse: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (!this.#cert.checkPrivateKey(this.#key)) throw new LinkKeyError('the host key does not match the host certificate', undefined);
  }

  prove(transcript: Buffer): Omit<AuthMessage, 'type'> {
    return { certificate: this.#cert.raw, proof: sign('sha256', transcript, this.#key) };
  }

  check(transcript: Buffer, auth: AuthMessage, peerHost: string, nowMs: number): string | undefined {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(auth.certificate);
    } catch {
      return 'peer certificate does not parse';
    }
    if (cert.ca) return 'peer certificate is a CA certificate, not a host certificate';
    if (!cert.checkIssued(this.#ca) || !cert.verify(this.#ca.publicKey)) return 'peer certificate is not signed by the deployment CA';
    if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) return `peer certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})`;
    const names = certificateNames({ subject: parseSubject(cert.subject), subjectaltname: cert.subjectAltName });
    if (!names.includes(peerHost)) return `peer says it is ${peerHost} but its certificate names ${names.join(', ') || 'nobody'}`;
    let good = false;
    try {
      good = verify('sha256', transcript, cert.publicKey, auth.proof);
    } catch {
      good = false;
    }
    return good ? undefined : 'certificate proof does not verify (a replayed or forged handshake)';
  }
}

/** An X509Certificate's subject ("CN=h1\nO=x") as the object certificateNames reads. */
function parseSubject(subject: string): { CN?: string[] } {
  const cn = subject.split('\n').filter((l) => l.startsWith('CN=')).map((l) => l.slice(3));
  return cn.length === 0 ? {} : { CN: cn };
}

/**
 * Read a link key file: base64 (or hex) text of at least MIN_LINK_KEY_BYTES
 * random bytes, readable by its owner only (`vnet certs link-key` writes one).
 */
export function loadLinkKey(file: string): Buffer {
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new LinkKeyError(`cannot read the link key: ${(err as Error).message}`, file, { cause: err });
  }
  if ((mode & 0o077) !== 0) throw new LinkKeyError(`the link key is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`, file);
  const key = /^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length < MIN_LINK_KEY_BYTES) throw new LinkKeyError(`a link key is at least ${MIN_LINK_KEY_BYTES} bytes (base64 or hex), this one is ${key.length}`, file);
  return key;
}

/** Where `vnet certs link-key --dir DIR` keeps the link key. */
export function linkKeyFile(dir: string): string {
  return join(dir, 'link.key');
}

/** Write a new random link key to `file` (mode 0600); an existing one is kept unless `force`. Returns whether one was written. */
export function writeLinkKey(file: string, force = false): boolean {
  if (existsSync(file) && !force) {
    loadLinkKey(file);
    return false;
  }
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, randomBytes(MIN_LINK_KEY_BYTES).toString('base64') + '\n', { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    throw new LinkKeyError(`cannot write the link key: ${(err as Error).message}`, file, { cause: err });
  }
  return true;
}
