import { createHmac } from 'node:crypto';
import type { LinkRole } from './wire-messages.ts';

/**
 * The key schedule of native records (record-layer.ts; native/tap/records.cc
 * is the C++ twin of the derivations). docs/wire-protocol.md, "Native
 * records", has the argument.
 *
 *   versions   ALPN `vnet-records/2` (rekeying) is offered before
 *              `vnet-records/1` (one key per direction for the connection's
 *              life); the TLS server picks the first both ends offer.
 *   /1         the TLS exporter (EXPORTER_LABEL_V1, 88 bytes) gives each
 *              direction its key and IV directly.
 *   /2         the exporter (EXPORTER_LABEL_V2, 64 bytes) gives each direction
 *              a traffic secret; key = HKDF-Expand-Label(secret, "key", 32),
 *              iv = HKDF-Expand-Label(secret, "iv", 12), and the next
 *              generation's secret = HKDF-Expand-Label(secret, "traffic upd",
 *              32) — TLS 1.3's schedule (RFC 8446 §7.1–7.3) with SHA-256, the
 *              label prefix "vnet " for "tls13 " and an empty context. The old
 *              secret, key and IV are zeroed when the next generation replaces
 *              them.
 */

export type RecordVersion = 1 | 2;

export const PLAIN_ALPN = 'vnet';
export const RECORDS_ALPN_V1 = 'vnet-records/1';
export const RECORDS_ALPN_V2 = 'vnet-records/2';
/** What a daemon with native records offers, most preferred first. */
export const RECORDS_ALPNS: readonly string[] = Object.freeze([RECORDS_ALPN_V2, RECORDS_ALPN_V1]);

const ALPN_OF: Readonly<Record<RecordVersion, string>> = { 1: RECORDS_ALPN_V1, 2: RECORDS_ALPN_V2 };

/** The ALPN names for the versions offered, in the order given. */
export function recordsAlpn(versions: readonly RecordVersion[]): string[] {
  return versions.map((v) => ALPN_OF[v]);
}

/** The records version the TLS handshake agreed on, if any. */
export function recordVersionOf(alpn: string | false | null | undefined): RecordVersion | undefined {
  if (alpn === RECORDS_ALPN_V2) return 2;
  if (alpn === RECORDS_ALPN_V1) return 1;
  return undefined;
}

export const EXPORTER_LABEL_V1 = 'EXPORTER-vnet-native-link-v1';
export const EXPORTER_LABEL_V2 = 'EXPORTER-vnet-native-link-v2';
const KEY_BYTES = 32;
const IV_BYTES = 12;
export const SECRET_BYTES = 32;

/** The exporter's label and length for a version. */
export function exporterFor(version: RecordVersion): { label: string; bytes: number } {
  return version === 1 ? { label: EXPORTER_LABEL_V1, bytes: 2 * (KEY_BYTES + IV_BYTES) } : { label: EXPORTER_LABEL_V2, bytes: 2 * SECRET_BYTES };
}

/** One direction's key, IV, (on /2) traffic secret and generation, and progress under this key. */
export interface RecordDirection {
  key: Buffer;
  iv: Buffer;
  /** vnet-records/2: this generation's traffic secret; undefined on /1 (no rekeying). */
  secret: Buffer | undefined;
  /** Key updates done so far (0 on /1). */
  generation: number;
  /** Records sealed or opened under this key (the next record's counter). */
  seq: number;
  /** Plaintext bytes sealed or opened under this key. */
  bytes: number;
}

/** A records link's keys as the admin interface shows them (no key material). */
export interface RecordKeyStatus {
  version: RecordVersion;
  /** Key updates done so far in each direction (0 on /1). */
  txGeneration: number;
  rxGeneration: number;
  /** Records and plaintext bytes sealed / opened under the current key. */
  txRecords: number;
  txBytes: number;
  rxRecords: number;
  rxBytes: number;
  /** How long the send key has been in use. */
  txKeyAgeMs: number;
}

/** HKDF-Expand-Label (RFC 8446 §7.1, "vnet " prefix, empty context) with SHA-256, for lengths up to 32: one HMAC block. */
export function hkdfExpandLabel(secret: Buffer, label: string, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 32) throw new RangeError(`HKDF-Expand-Label length is 1..32 here, not ${length}`);
  const full = Buffer.from(`vnet ${label}`, 'ascii');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0])]);
  return hkdfExpand(secret, info, length);
}

/** HKDF-Expand (RFC 5869 §2.3) with SHA-256 for at most one block: T(1) = HMAC(prk, info · 0x01). */
export function hkdfExpand(prk: Buffer, info: Buffer, length: number): Buffer {
  const block = createHmac('sha256', prk).update(info).update(Buffer.from([1])).digest();
  const out = Buffer.from(block.subarray(0, length));
  block.fill(0);
  return out;
}

/** A /2 direction at generation 0 from its traffic secret (taken over, not copied). */
function fromSecret(secret: Buffer): RecordDirection {
  return { key: hkdfExpandLabel(secret, 'key', KEY_BYTES), iv: hkdfExpandLabel(secret, 'iv', IV_BYTES), secret, generation: 0, seq: 0, bytes: 0 };
}

/** Move a /2 direction to its next generation: new secret, key and IV (the old ones zeroed), counters from 0. */
export function nextGeneration(d: RecordDirection): void {
  const old = d.secret;
  if (old === undefined) throw new RangeError('a vnet-records/1 direction has no next generation');
  const next = fromSecret(hkdfExpandLabel(old, 'traffic upd', SECRET_BYTES));
  for (const b of [old, d.key, d.iv]) b.fill(0);
  d.secret = next.secret;
  d.key = next.key;
  d.iv = next.iv;
  d.generation++;
  d.seq = 0;
  d.bytes = 0;
}

/** Our sending and receiving directions from the exporter's bytes (dl: dialer to listener, ld: listener to dialer). */
export function directionsFromMaterial(material: Buffer, role: LinkRole, version: RecordVersion = 1): { tx: RecordDirection; rx: RecordDirection } {
  const want = exporterFor(version).bytes;
  if (material.length !== want) throw new RangeError(`vnet-records/${version} key material is ${want} bytes, not ${material.length}`);
  let dialer: RecordDirection;
  let listener: RecordDirection;
  if (version === 1) {
    // key_dl · key_ld · iv_dl · iv_ld
    dialer = { key: Buffer.from(material.subarray(0, KEY_BYTES)), iv: Buffer.from(material.subarray(2 * KEY_BYTES, 2 * KEY_BYTES + IV_BYTES)), secret: undefined, generation: 0, seq: 0, bytes: 0 };
    listener = { key: Buffer.from(material.subarray(KEY_BYTES, 2 * KEY_BYTES)), iv: Buffer.from(material.subarray(2 * KEY_BYTES + IV_BYTES)), secret: undefined, generation: 0, seq: 0, bytes: 0 };
  } else {
    // secret_dl · secret_ld
    dialer = fromSecret(Buffer.from(material.subarray(0, SECRET_BYTES)));
    listener = fromSecret(Buffer.from(material.subarray(SECRET_BYTES)));
  }
  return role === 'dialer' ? { tx: dialer, rx: listener } : { tx: listener, rx: dialer };
}

/** A deep copy (its own buffers: zeroing one never touches the other). */
export function copyDirection(d: RecordDirection): RecordDirection {
  return { key: Buffer.from(d.key), iv: Buffer.from(d.iv), secret: d.secret === undefined ? undefined : Buffer.from(d.secret), generation: d.generation, seq: d.seq, bytes: d.bytes };
}
