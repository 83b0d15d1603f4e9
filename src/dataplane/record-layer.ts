import { createCipheriv, createDecipheriv } from 'node:crypto';
import { realClock, type Clock } from '../common/clock.ts';
import { RecordLayerError } from './errors.ts';
import { nextGeneration, type RecordDirection } from './record-keys.ts';

/**
 * Native records: the AEAD record layer a TLS link switches to once both ends
 * agreed (tls-switch.ts), so that the native forwarder's thread can seal and
 * open them itself (native/tap/records.cc is the C++ twin of this file; the
 * two hand keys, generation and counters to each other when the forwarder
 * attaches or lets go). docs/wire-protocol.md ("Native records") has the
 * bytes and the argument; record-keys.ts the keys.
 *
 *   record   type (u8) · length L (u24 BE: ciphertext + tag,
 *            17..RECORD_MAX_PLAIN+16) · AES-256-GCM ciphertext · 16-byte tag;
 *            the 4 header bytes are the associated data, so a record cannot be
 *            cut, stretched or retyped. Type 0 is data; on vnet-records/1 no
 *            other type exists (its header reads as one u32 length).
 *   nonce    the direction's IV XOR (4 zero bytes, u64 BE record counter): the
 *            counter only goes up, so a nonce is never used twice under a key.
 *   rekey    vnet-records/2: once a direction's counters reach the rekey
 *            threshold (RekeyThresholds, DEFAULT_REKEY), the sealer sends a
 *            KEY_UPDATE record (type 1, plaintext = the next generation, u64
 *            BE) under its current key, then seals under the next generation's
 *            key with the counter from 0; the opener, on opening a KEY_UPDATE,
 *            moves its key on the same way. No round trip; each direction on its own.
 *            The threshold is records, bytes or the key's age (`ageMs`, on the
 *            injected clock), whichever comes first.
 *   limits   at most `maxRecords` records and `maxBytes` plaintext bytes per
 *            key (DEFAULT_LIMITS: the per-key budget TLS 1.3 sets for AES-GCM,
 *            RFC 8446 §5.5), the backstop behind the rekeying (and /1's only
 *            bound); then VNET_ERR_RECORD_LIMIT: the link is redialled.
 *   errors   the opener is total: any byte stream gives plaintext or a typed
 *            RecordLayerError (LENGTH, AUTH, KEY_UPDATE, TRUNCATED at the end,
 *            LIMIT), never a throw, and nothing of a record that does not verify.
 */

export const RECORD_HEADER_BYTES = 4;
export const RECORD_TAG_BYTES = 16;
/** Largest plaintext in one record (native/tap/records.h kRecordMaxPlain). */
export const RECORD_MAX_PLAIN = 128 * 1024;
export const RECORD_TYPE_DATA = 0;
export const RECORD_TYPE_KEY_UPDATE = 1;
/** A KEY_UPDATE's plaintext: the generation the sender moves to, u64 BE. */
export const KEY_UPDATE_PLAIN = 8;

export interface RecordLimits {
  maxRecords: number;
  maxBytes: number;
}

/** 2^38 bytes: about 2^24.5 records of 2^14 bytes, TLS 1.3's AES-GCM budget per key. */
export const DEFAULT_LIMITS: Readonly<RecordLimits> = Object.freeze({ maxRecords: 2 ** 48, maxBytes: 2 ** 38 });

/**
 * When a /2 sender moves to its next key: once it sealed `records` records or
 * `bytes` plaintext bytes under the current one, or the key is `ageMs` old
 * (0: no age threshold), whichever comes first.
 */
export interface RekeyThresholds {
  records: number;
  bytes: number;
  /** Absent: DEFAULT_REKEY_AGE_MS; 0: no age threshold. */
  ageMs?: number | undefined;
}

/** The key's age at which a /2 sender updates it when the thresholds name none: an hour. */
export const DEFAULT_REKEY_AGE_MS = 3_600_000;

/** 2^34 bytes (16 GiB, 1/16 of the limit: about every 27 s at 5 Gbit/s), 2^32 records or an hour, whichever comes first. */
export const DEFAULT_REKEY: Readonly<RekeyThresholds> = Object.freeze({ records: 2 ** 32, bytes: 2 ** 34, ageMs: DEFAULT_REKEY_AGE_MS });

/** Problems with rekey thresholds (empty: fine): positive safe integers (ageMs: 0 turns the age threshold off). */
export function rekeyProblems(t: RekeyThresholds): string[] {
  const counts = (['records', 'bytes'] as const).filter((k) => !Number.isSafeInteger(t[k]) || t[k] < 1).map((k) => `${k} must be a positive integer, got ${String(t[k])}`);
  const age = t.ageMs === undefined || (Number.isSafeInteger(t.ageMs) && t.ageMs >= 0) ? [] : [`ageMs must be an integer >= 0, got ${String(t.ageMs)}`];
  return [...counts, ...age];
}

/** The age threshold in force (0: none). */
export function rekeyAgeMs(t: RekeyThresholds): number {
  return t.ageMs ?? DEFAULT_REKEY_AGE_MS;
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

/** Seals plaintext into records for one direction (on /2, with a KEY_UPDATE first whenever the threshold is reached). */
export class RecordSealer {
  readonly direction: RecordDirection;
  readonly #limits: RecordLimits;
  readonly #rekey: RekeyThresholds;
  readonly #clock: Pick<Clock, 'now'>;
  /** When (the clock's now()) this generation's key began sealing. */
  #since: number;

  constructor(direction: RecordDirection, limits: RecordLimits = DEFAULT_LIMITS, rekey: RekeyThresholds = DEFAULT_REKEY, clock: Pick<Clock, 'now'> = realClock) {
    this.direction = direction;
    this.#limits = limits;
    this.#rekey = rekey;
    this.#clock = clock;
    this.#since = clock.now();
  }

  /** How long the current key has been in use (what the native forwarder carries on from, and gives back). */
  get keyAgeMs(): number {
    return Math.max(0, Math.floor(this.#clock.now() - this.#since));
  }

  set keyAgeMs(ms: number) {
    this.#since = this.#clock.now() - ms;
  }

  #due(d: RecordDirection): boolean {
    const r = this.#rekey;
    const age = rekeyAgeMs(r);
    return d.seq >= r.records || d.bytes >= r.bytes || (age > 0 && this.#clock.now() - this.#since >= age);
  }

  /** The chunks as records of at most RECORD_MAX_PLAIN bytes each (all of them in one when they fit), or the limit error. */
  seal(chunks: readonly Uint8Array[]): Buffer | RecordLayerError {
    const plain = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const out: Buffer[] = [];
    for (let off = 0; off < plain.length; off += RECORD_MAX_PLAIN) {
      const d = this.direction;
      if (d.secret !== undefined && this.#due(d)) {
        const next = Buffer.alloc(KEY_UPDATE_PLAIN);
        next.writeBigUInt64BE(BigInt(d.generation + 1));
        const update = this.#sealOne(RECORD_TYPE_KEY_UPDATE, next);
        if (update instanceof RecordLayerError) return update;
        out.push(...update);
        nextGeneration(d);
        this.#since = this.#clock.now();
      }
      const sealed = this.#sealOne(RECORD_TYPE_DATA, plain.subarray(off, Math.min(plain.length, off + RECORD_MAX_PLAIN)));
      if (sealed instanceof RecordLayerError) return sealed;
      out.push(...sealed);
    }
    return Buffer.concat(out);
  }

  #sealOne(type: number, plain: Uint8Array): Buffer[] | RecordLayerError {
    const d = this.direction;
    if (used(d, this.#limits, plain.length)) return limitError(d, this.#limits, 'send');
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    header.writeUInt32BE(plain.length + RECORD_TAG_BYTES, 0);
    header[0] = type;
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
      const type = buf[0]!;
      const body = buf.readUIntBE(1, 3);
      const headerError = this.#checkHeader(type, body);
      if (headerError !== undefined) return this.#fail(plain, headerError);
      if (buf.length < RECORD_HEADER_BYTES + body) break;
      const opened = this.#openOne(buf, body);
      if (opened instanceof RecordLayerError) return this.#fail(plain, opened);
      if (type === RECORD_TYPE_KEY_UPDATE) {
        const error = this.#keyUpdate(opened);
        if (error !== undefined) return this.#fail(plain, error);
      } else {
        plain.push(opened);
      }
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

  #checkHeader(type: number, body: number): RecordLayerError | undefined {
    const rekeying = this.direction.secret !== undefined;
    if (type === RECORD_TYPE_KEY_UPDATE && rekeying) {
      if (body === KEY_UPDATE_PLAIN + RECORD_TAG_BYTES) return undefined;
      return new RecordLayerError('VNET_ERR_RECORD_KEY_UPDATE', `a KEY_UPDATE record is ${KEY_UPDATE_PLAIN + RECORD_TAG_BYTES} bytes long, not ${body}`);
    }
    if (type !== RECORD_TYPE_DATA) {
      const header = `${type.toString(16).padStart(2, '0')}${body.toString(16).padStart(6, '0')}`;
      return new RecordLayerError('VNET_ERR_RECORD_LENGTH', rekeying ? `record type ${type} (header ${header}) is neither data (0) nor KEY_UPDATE (1)` : `record length 0x${header} is outside ${RECORD_TAG_BYTES + 1}..${RECORD_MAX_PLAIN + RECORD_TAG_BYTES}`);
    }
    if (body <= RECORD_TAG_BYTES || body > RECORD_MAX_PLAIN + RECORD_TAG_BYTES) {
      return new RecordLayerError('VNET_ERR_RECORD_LENGTH', `record length ${body} is outside ${RECORD_TAG_BYTES + 1}..${RECORD_MAX_PLAIN + RECORD_TAG_BYTES}`);
    }
    return undefined;
  }

  /** A verified KEY_UPDATE: it must name the next generation; then the receive key moves on. */
  #keyUpdate(plain: Buffer): RecordLayerError | undefined {
    const d = this.direction;
    const named = plain.readBigUInt64BE(0);
    if (named !== BigInt(d.generation + 1)) return new RecordLayerError('VNET_ERR_RECORD_KEY_UPDATE', `a KEY_UPDATE names generation ${named}, not ${d.generation + 1}`);
    nextGeneration(d);
    return undefined;
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

/** The forwarder's errnos for a failed records link (native/tap/records.h kRecordErr*). */
const RECORD_ERRNOS: ReadonlyMap<number, { code: RecordLayerError['code']; what: string }> = new Map([
  [34, { code: 'VNET_ERR_RECORD_LENGTH', what: 'a record header from the peer has a bad length or type (native forwarder, ERANGE)' }],
  [74, { code: 'VNET_ERR_RECORD_AUTH', what: 'a record from the peer did not verify (native forwarder, EBADMSG)' }],
  [61, { code: 'VNET_ERR_RECORD_TRUNCATED', what: 'the connection ended inside a record (native forwarder, ENODATA)' }],
  [75, { code: 'VNET_ERR_RECORD_LIMIT', what: "the link's record key is used up (native forwarder, EOVERFLOW); the link must be redialled for fresh keys" }],
  [129, { code: 'VNET_ERR_RECORD_KEY_UPDATE', what: 'a KEY_UPDATE record from the peer has the wrong size or generation (native forwarder, EKEYREJECTED)' }],
] as const);

/** The forwarder's errno for a records link that failed, as the typed error (undefined: not a record error). */
export function recordErrnoError(errno: number): RecordLayerError | undefined {
  const known = RECORD_ERRNOS.get(errno);
  return known === undefined ? undefined : new RecordLayerError(known.code, known.what);
}
