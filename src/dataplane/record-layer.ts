import { createCipheriv, createDecipheriv } from 'node:crypto';
import { RecordLayerError } from './errors.ts';
import type { LinkRole } from './wire-messages.ts';

/**
 * Native records: the AEAD record layer a TLS link switches to once both ends
 * agreed (tls-switch.ts), so that the native forwarder's thread can seal and
 * open them itself (native/tap/records.cc is the C++ twin of this file; the
 * two hand the counters to each other when the forwarder attaches or lets go).
 * docs/wire-protocol.md ("Native records") has the bytes and the argument.
 *
 *   keys     KEY_MATERIAL_BYTES from the TLS exporter (RFC 8446 §7.5) with
 *            EXPORTER_LABEL, split into a key and an IV per direction
 *            (dialer→listener, listener→dialer): bound to the mutually
 *            authenticated session, never the same key for both directions.
 *   record   u32 BE length L (ciphertext + tag, 17..RECORD_MAX_PLAIN+16),
 *            AES-256-GCM ciphertext, 16-byte tag; the length bytes are the
 *            associated data, so a record cannot be cut or stretched.
 *   nonce    the direction's IV XOR (4 zero bytes, u64 BE record counter): the
 *            counter only goes up, so a nonce is never used twice under a key.
 *   limits   at most `maxRecords` records and `maxBytes` plaintext bytes per
 *            direction (DEFAULT_LIMITS: the per-key budget TLS 1.3 sets for
 *            AES-GCM, RFC 8446 §5.5); then VNET_ERR_RECORD_LIMIT: the link is
 *            redialled and gets fresh keys.
 *   errors   the opener is total: any byte stream gives plaintext or a typed
 *            RecordLayerError (LENGTH, AUTH, TRUNCATED at the end, LIMIT),
 *            never a throw, and nothing of a record that does not verify.
 */

export const RECORD_HEADER_BYTES = 4;
export const RECORD_TAG_BYTES = 16;
/** Largest plaintext in one record (native/tap/records.h kRecordMaxPlain). */
export const RECORD_MAX_PLAIN = 128 * 1024;
/** The ALPN names: a dialer and a listener that both offer RECORDS_ALPN switch; 'vnet' is plain TLS. */
export const RECORDS_ALPN = 'vnet-records/1';
export const PLAIN_ALPN = 'vnet';
export const EXPORTER_LABEL = 'EXPORTER-vnet-native-link-v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
export const KEY_MATERIAL_BYTES = 2 * (KEY_BYTES + IV_BYTES);

export interface RecordLimits {
  maxRecords: number;
  maxBytes: number;
}

/** 2^38 bytes: about 2^24.5 records of 2^14 bytes, TLS 1.3's AES-GCM budget per key. */
export const DEFAULT_LIMITS: Readonly<RecordLimits> = Object.freeze({ maxRecords: 2 ** 48, maxBytes: 2 ** 38 });

/** One direction's key, IV and progress (records and plaintext bytes done). */
export interface RecordDirection {
  readonly key: Buffer;
  readonly iv: Buffer;
  seq: number;
  bytes: number;
}

/** Our sending and receiving directions from the exporter's bytes. */
export function directionsFromMaterial(material: Buffer, role: LinkRole): { tx: RecordDirection; rx: RecordDirection } {
  if (material.length !== KEY_MATERIAL_BYTES) throw new RangeError(`record key material is ${KEY_MATERIAL_BYTES} bytes, not ${material.length}`);
  const dialer = { key: Buffer.from(material.subarray(0, KEY_BYTES)), iv: Buffer.from(material.subarray(2 * KEY_BYTES, 2 * KEY_BYTES + IV_BYTES)), seq: 0, bytes: 0 };
  const listener = { key: Buffer.from(material.subarray(KEY_BYTES, 2 * KEY_BYTES)), iv: Buffer.from(material.subarray(2 * KEY_BYTES + IV_BYTES)), seq: 0, bytes: 0 };
  return role === 'dialer' ? { tx: dialer, rx: listener } : { tx: listener, rx: dialer };
}

function nonce(d: RecordDirection): Buffer {
  const n = Buffer.from(d.iv);
  const hi = Math.floor(d.seq / 2 ** 32);
  const lo = d.seq >>> 0;
  n.writeUInt32BE((n.readUInt32BE(4) ^ hi) >>> 0, 4);
  n.writeUInt32BE((n.readUInt32BE(8) ^ lo) >>> 0, 8);
  return n;
}

function used(d: RecordDirection, limits: RecordLimits, len: number): boolean {
  return d.seq >= limits.maxRecords || len > limits.maxBytes - Math.min(limits.maxBytes, d.bytes);
}

/** Seals plaintext into records for one direction. */
export class RecordSealer {
  readonly direction: RecordDirection;
  readonly #limits: RecordLimits;

  constructor(direction: RecordDirection, limits: RecordLimits = DEFAULT_LIMITS) {
    this.direction = direction;
    this.#limits = limits;
  }

  /** The chunks as records of at most RECORD_MAX_PLAIN bytes each (all of them in one when they fit), or the limit error. */
  seal(chunks: readonly Uint8Array[]): Buffer | RecordLayerError {
    const plain = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const out: Buffer[] = [];
    for (let off = 0; off < plain.length; off += RECORD_MAX_PLAIN) {
      const sealed = this.#sealOne(plain.subarray(off, Math.min(plain.length, off + RECORD_MAX_PLAIN)));
      if (sealed instanceof RecordLayerError) return sealed;
      out.push(...sealed);
    }
    return Buffer.concat(out);
  }

  #sealOne(plain: Uint8Array): Buffer[] | RecordLayerError {
    const d = this.direction;
    if (used(d, this.#limits, plain.length)) return limitError(d, this.#limits, 'send');
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    header.writeUInt32BE(plain.length + RECORD_TAG_BYTES, 0);
    const cipher = createCipheriv('aes-256-gcm', d.key, nonce(d));
    cipher.setAAD(header);
    const body = cipher.update(plain);
    const fin = cipher.final();
    const tag = cipher.getAuthTag();
    d.seq++;
    d.bytes += plain.length;
    return [header, body, fin, tag];
  }
}

/** What one push gave: the plaintext of every record that verified, and the error that stopped it, if any. */
export interface OpenResult {
  plain: Buffer[];
  error: RecordLayerError | undefined;
}

/** Opens a byte stream of records, in any chunking, for one direction. Never throws. */
export class RecordOpener {
  readonly direction: RecordDirection;
  readonly #limits: RecordLimits;
  #pending: Buffer = Buffer.alloc(0);
  #failed: RecordLayerError | undefined;

  constructor(direction: RecordDirection, limits: RecordLimits = DEFAULT_LIMITS, pending?: Buffer) {
    this.direction = direction;
    this.#limits = limits;
    if (pending !== undefined) this.#pending = pending;
  }

  /** Bytes received and not yet opened (the start of a record). */
  get pending(): Buffer {
    return this.#pending;
  }

  push(bytes: Uint8Array): OpenResult {
    if (this.#failed !== undefined) return { plain: [], error: this.#failed };
    let buf = this.#pending.length === 0 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.concat([this.#pending, bytes]);
    const plain: Buffer[] = [];
    while (buf.length >= RECORD_HEADER_BYTES) {
      const body = buf.readUInt32BE(0);
      if (body <= RECORD_TAG_BYTES || body > RECORD_MAX_PLAIN + RECORD_TAG_BYTES) {
        return this.#fail(plain, new RecordLayerError('VNET_ERR_RECORD_LENGTH', `record length ${body} is outside ${RECORD_TAG_BYTES + 1}..${RECORD_MAX_PLAIN + RECORD_TAG_BYTES}`));
      }
      if (buf.length < RECORD_HEADER_BYTES + body) break;
      const opened = this.#openOne(buf, body);
      if (opened instanceof RecordLayerError) return this.#fail(plain, opened);
      plain.push(opened);
      buf = buf.subarray(RECORD_HEADER_BYTES + body);
    }
    this.#pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return { plain, error: undefined };
  }

  /** The stream ended: an error when it ended inside a record. */
  end(): RecordLayerError | undefined {
    if (this.#failed !== undefined || this.#pending.length === 0) return this.#failed;
    this.#failed = new RecordLayerError('VNET_ERR_RECORD_TRUNCATED', `the stream ended ${this.#pending.length} bytes into a record`);
    return this.#failed;
  }

  #openOne(buf: Buffer, body: number): Buffer | RecordLayerError {
    const d = this.direction;
    const len = body - RECORD_TAG_BYTES;
    if (used(d, this.#limits, len)) return limitError(d, this.#limits, 'receive');
    try {
      const decipher = createDecipheriv('aes-256-gcm', d.key, nonce(d));
      decipher.setAAD(buf.subarray(0, RECORD_HEADER_BYTES));
      decipher.setAuthTag(buf.subarray(RECORD_HEADER_BYTES + len, RECORD_HEADER_BYTES + body));
      const out = decipher.update(buf.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + len));
      const fin = decipher.final();
      d.seq++;
      d.bytes += len;
      return fin.length === 0 ? out : Buffer.concat([out, fin]);
    } catch (err) {
      return new RecordLayerError('VNET_ERR_RECORD_AUTH', `record ${d.seq} does not verify (tampered with, or not from the peer)`, { cause: err });
    }
  }

  #fail(plain: Buffer[], err: RecordLayerError): OpenResult {
    this.#failed = err;
    this.#pending = Buffer.alloc(0);
    return { plain, error: err };
  }
}

function limitError(d: RecordDirection, limits: RecordLimits, what: 'send' | 'receive'): RecordLayerError {
  return new RecordLayerError('VNET_ERR_RECORD_LIMIT', `the ${what} key is used up (${d.seq} records of ${limits.maxRecords}, ${d.bytes} bytes of ${limits.maxBytes}); the link must be redialled for fresh keys`);
}

/** The forwarder's errno for a records link that failed, as the typed error (undefined: not a record error). */
export function recordErrnoError(errno: number): RecordLayerError | undefined {
  if (errno === 74) return new RecordLayerError('VNET_ERR_RECORD_AUTH', 'a record from the peer did not verify or was cut short (native forwarder, EBADMSG)');
  if (errno === 75) return new RecordLayerError('VNET_ERR_RECORD_LIMIT', 'the link\'s record key is used up (native forwarder, EOVERFLOW); the link must be redialled for fresh keys');
  return undefined;
}
