/**
 * The NBD protocol's bytes (https://github.com/NetworkBlockDevice/nbd,
 * doc/proto.md), as the daemon's NBD server speaks it: the fixed newstyle
 * handshake, then transmission with simple replies.
 *
 *   server  greeting   NBDMAGIC IHAVEOPT, handshake flags (FIXED_NEWSTYLE, NO_ZEROES)
 *   client  flags      u32 (FIXED_NEWSTYLE, NO_ZEROES; any other bit: refused)
 *   client  option     IHAVEOPT, u32 option, u32 length, data
 *   server  reply      REPLY_MAGIC, u32 option, u32 type, u32 length, data
 *   client  request    REQUEST_MAGIC, u16 flags, u16 type, u64 cookie, u64 offset, u32 length (+ data for WRITE)
 *   server  reply      SIMPLE_REPLY_MAGIC, u32 error, u64 cookie (+ data for a READ without error)
 *
 * NbdDecoder reads what a client sends, in any chunking: `push` the bytes,
 * then take messages with `next` until it returns undefined. It never
 * throws: bad bytes (a wrong magic, unknown client flags, an option or a
 * write longer than the limits) come back as an NbdProtocolError, after
 * which the decoder yields nothing more (the connection is to be closed).
 * Lengths are checked before anything is buffered. The phase (options, then
 * transmission) is the server's to switch, once it has accepted an export.
 */
import { NbdProtocolError } from './errors.ts';

export const NBD_MAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

export const HANDSHAKE_FLAG = { fixedNewstyle: 1, noZeroes: 2 } as const;
export const CLIENT_FLAG = { fixedNewstyle: 1, noZeroes: 2 } as const;

export const OPT = { exportName: 1, abort: 2, list: 3, startTls: 5, info: 6, go: 7, structuredReply: 8 } as const;
export const REP = {
  ack: 1, server: 2, info: 3,
  errUnsup: 0x80000001, errPolicy: 0x80000002, errInvalid: 0x80000003, errUnknown: 0x80000006, errTooBig: 0x80000009,
} as const;
export const INFO = { export: 0, blockSize: 3 } as const;

export const TRANSMISSION_FLAG = { hasFlags: 1, readOnly: 2, sendFlush: 4, sendFua: 8, sendWriteZeroes: 64 } as const;
export const CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, writeZeroes: 6, blockStatus: 7 } as const;
export const CMD_FLAG = { fua: 1, noHole: 2 } as const;
export const ERRNO = { eperm: 1, eio: 5, einval: 22, enospc: 28, enotsup: 95, eshutdown: 108 } as const;

const OPTION_HEADER = 16;
const REQUEST_HEADER = 28;

export interface NbdDecoderLimits {
  /** The longest option data accepted (an export name is at most 4096 bytes). */
  readonly maxOptionBytes: number;
  /** The longest WRITE payload accepted. */
  readonly maxPayloadBytes: number;
}

export const DEFAULT_NBD_LIMITS: NbdDecoderLimits = Object.freeze({ maxOptionBytes: 8192, maxPayloadBytes: 32 * 1024 * 1024 });

export type NbdClientMessage =
  | { readonly kind: 'client-flags'; readonly flags: number }
  | { readonly kind: 'option'; readonly option: number; readonly data: Uint8Array }
  | { readonly kind: 'request'; readonly flags: number; readonly type: number; readonly cookie: bigint; readonly offset: bigint; readonly length: number; readonly data: Uint8Array | undefined }
  | { readonly kind: 'error'; readonly error: NbdProtocolError };

type Phase = 'flags' | 'options' | 'transmission' | 'failed';

export class NbdDecoder {
  readonly #limits: NbdDecoderLimits;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #phase: Phase = 'flags';

  constructor(limits: Partial<NbdDecoderLimits> = {}) {
    this.#limits = { ...DEFAULT_NBD_LIMITS, ...limits };
  }

  push(bytes: Uint8Array): void {
    if (this.#phase === 'failed' || bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#buffered += bytes.length;
  }

  /** Bytes received and not yet decoded. */
  get buffered(): number {
    return this.#buffered;
  }

  /** The server accepted an export: what follows are requests. */
  startTransmission(): void {
    if (this.#phase === 'options') this.#phase = 'transmission';
  }

  next(): NbdClientMessage | undefined {
    switch (this.#phase) {
      case 'flags': return this.#flags();
      case 'options': return this.#option();
      case 'transmission': return this.#request();
      case 'failed': return undefined;
    }
  }

  #flags(): NbdClientMessage | undefined {
    const head = this.#peek(4);
    if (head === undefined) return undefined;
    const flags = view(head).getUint32(0);
    if ((flags & ~(CLIENT_FLAG.fixedNewstyle | CLIENT_FLAG.noZeroes)) !== 0) return this.#fail(`unknown client flags 0x${flags.toString(16)}`);
    if ((flags & CLIENT_FLAG.fixedNewstyle) === 0) return this.#fail('the client does not speak the fixed newstyle handshake');
    this.#take(4);
    this.#phase = 'options';
    return { kind: 'client-flags', flags };
  }

  #option(): NbdClientMessage | undefined {
    const head = this.#peek(OPTION_HEADER);
    if (head === undefined) return undefined;
    const v = view(head);
    if (v.getBigUint64(0) !== IHAVEOPT) return this.#fail(`an option does not start with IHAVEOPT (0x${v.getBigUint64(0).toString(16)})`);
    const option = v.getUint32(8);
    const length = v.getUint32(12);
    if (length > this.#limits.maxOptionBytes) return this.#fail(`option ${option} carries ${length} bytes, more than ${this.#limits.maxOptionBytes}`);
    if (this.#buffered < OPTION_HEADER + length) return undefined;
    const all = this.#take(OPTION_HEADER + length);
    return { kind: 'option', option, data: all.subarray(OPTION_HEADER) };
  }

  #request(): NbdClientMessage | undefined {
    const head = this.#peek(REQUEST_HEADER);
    if (head === undefined) return undefined;
    const v = view(head);
    const magic = v.getUint32(0);
    if (magic !== REQUEST_MAGIC) return this.#fail(`a request does not start with the request magic (0x${magic.toString(16)})`);
    const flags = v.getUint16(4);
    const type = v.getUint16(6);
    const cookie = v.getBigUint64(8);
    const offset = v.getBigUint64(16);
    const length = v.getUint32(24);
    if (type !== CMD.write) {
      this.#take(REQUEST_HEADER);
      return { kind: 'request', flags, type, cookie, offset, length, data: undefined };
    }
    if (length > this.#limits.maxPayloadBytes) return this.#fail(`a write of ${length} bytes, more than ${this.#limits.maxPayloadBytes}`);
    if (this.#buffered < REQUEST_HEADER + length) return undefined;
    const all = this.#take(REQUEST_HEADER + length);
    return { kind: 'request', flags, type, cookie, offset, length, data: all.subarray(REQUEST_HEADER) };
  }

  #fail(detail: string): NbdClientMessage {
    this.#phase = 'failed';
    this.#chunks = [];
    this.#buffered = 0;
    return { kind: 'error', error: new NbdProtocolError(detail) };
  }

  /** The first `n` bytes, without consuming them (undefined: not here yet). */
  #peek(n: number): Uint8Array | undefined {
    if (this.#buffered < n) return undefined;
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    this.#coalesce(n);
    return this.#chunks[0]!.subarray(0, n);
  }

  #take(n: number): Uint8Array {
    if (this.#chunks[0]!.length < n) this.#coalesce(n);
    const first = this.#chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift(); else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return out;
  }

  /** Join chunks until the first holds `n` bytes. */
  #coalesce(n: number): void {
    const joined = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - at);
      joined.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.#chunks.shift(); else this.#chunks[0] = c.subarray(k);
    }
    this.#chunks.unshift(joined);
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function bytes(n: number, fill: (v: DataView) => void): Uint8Array {
  const out = new Uint8Array(n);
  fill(view(out));
  return out;
}

// ---- what the server sends --------------------------------------------------------

export function encodeGreeting(): Uint8Array {
  return bytes(18, (v) => { v.setBigUint64(0, NBD_MAGIC); v.setBigUint64(8, IHAVEOPT); v.setUint16(16, HANDSHAKE_FLAG.fixedNewstyle | HANDSHAKE_FLAG.noZeroes); });
}

export function encodeOptionReply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = bytes(20 + data.length, (v) => { v.setBigUint64(0, OPTION_REPLY_MAGIC); v.setUint32(8, option); v.setUint32(12, type); v.setUint32(16, data.length); });
  out.set(data, 20);
  return out;
}

/** NBD_REP_SERVER's data: the export's name. */
export function encodeServerEntry(name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  const out = bytes(4 + n.length, (v) => v.setUint32(0, n.length));
  out.set(n, 4);
  return out;
}

/** NBD_REP_INFO's data for NBD_INFO_EXPORT: size and transmission flags. */
export function encodeInfoExport(size: number, flags: number): Uint8Array {
  return bytes(12, (v) => { v.setUint16(0, INFO.export); v.setBigUint64(2, BigInt(size)); v.setUint16(10, flags); });
}

/** NBD_REP_INFO's data for NBD_INFO_BLOCK_SIZE. */
export function encodeInfoBlockSize(min: number, preferred: number, max: number): Uint8Array {
  return bytes(14, (v) => { v.setUint16(0, INFO.blockSize); v.setUint32(2, min); v.setUint32(6, preferred); v.setUint32(10, max); });
}

/** The answer to NBD_OPT_EXPORT_NAME: size, transmission flags, and 124 zero bytes unless the client said NO_ZEROES. */
export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Uint8Array {
  return bytes(noZeroes ? 10 : 134, (v) => { v.setBigUint64(0, BigInt(size)); v.setUint16(8, flags); });
}

export function encodeSimpleReply(error: number, cookie: bigint, data?: Uint8Array): Uint8Array {
  const out = bytes(16 + (data?.length ?? 0), (v) => { v.setUint32(0, SIMPLE_REPLY_MAGIC); v.setUint32(4, error); v.setBigUint64(8, cookie); });
  if (data !== undefined) out.set(data, 16);
  return out;
}

/** NBD_OPT_GO / NBD_OPT_INFO's data: the export's name and the information asked for (undefined: malformed). */
export function decodeGoData(data: Uint8Array): { name: string; requests: number[] } | undefined {
  if (data.length < 6) return undefined;
  const v = view(data);
  const nameLength = v.getUint32(0);
  if (data.length < 4 + nameLength + 2) return undefined;
  const count = v.getUint16(4 + nameLength);
  if (data.length !== 4 + nameLength + 2 + 2 * count) return undefined;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(v.getUint16(4 + nameLength + 2 + 2 * i));
  const name = decodeName(data.subarray(4, 4 + nameLength));
  return name === undefined ? undefined : { name, requests };
}

/** An export name (UTF-8; undefined: not valid UTF-8). */
export function decodeName(b: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}

// ---- what a client sends (the tests' client) --------------------------------------

export function encodeClientFlags(flags: number): Uint8Array {
  return bytes(4, (v) => v.setUint32(0, flags));
}

export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = bytes(OPTION_HEADER + data.length, (v) => { v.setBigUint64(0, IHAVEOPT); v.setUint32(8, option); v.setUint32(12, data.length); });
  out.set(data, OPTION_HEADER);
  return out;
}

export function encodeGoData(name: string, requests: readonly number[] = []): Uint8Array {
  const n = new TextEncoder().encode(name);
  const out = bytes(4 + n.length + 2 + 2 * requests.length, (v) => {
    v.setUint32(0, n.length);
    v.setUint16(4 + n.length, requests.length);
    requests.forEach((r, i) => v.setUint16(4 + n.length + 2 + 2 * i, r));
  });
  out.set(n, 4);
  return out;
}

export function encodeRequest(r: { flags?: number; type: number; cookie: bigint; offset: bigint | number; length: number; data?: Uint8Array }): Uint8Array {
  const out = bytes(REQUEST_HEADER + (r.data?.length ?? 0), (v) => {
    v.setUint32(0, REQUEST_MAGIC); v.setUint16(4, r.flags ?? 0); v.setUint16(6, r.type);
    v.setBigUint64(8, r.cookie); v.setBigUint64(16, BigInt(r.offset)); v.setUint32(24, r.length);
  });
  if (r.data !== undefined) out.set(r.data, REQUEST_HEADER);
  return out;
}
