/**
 * The chunk protocol between sites' daemons, inside a mutual-TLS 1.3
 * connection (chunk-server.ts, remote-chunk-source.ts); docs/images.md.
 *
 *   request   one ASCII line: "HAS <digest>\n" or "GET <digest>\n"
 *             (at most MAX_REQUEST_LINE bytes with the newline), or
 *             "PUT <digest> <length>\n" followed by `length` bytes (a
 *             chunk the controller publishes at its origin site; length at
 *             most `maxPutBytes`, checked before buffering)
 *   response  a 5-byte header — status (u8), length (u32 big-endian) —
 *             then `length` bytes of chunk for OK, none otherwise:
 *               0 OK          the chunk's bytes follow (GET)
 *               1 ABSENT      not held here (HAS or GET)
 *               2 HELD        held here (HAS)
 *               3 BAD_REQUEST the line was not a request; the server closes
 *               4 STORED      PUT: stored (verified) or already held
 *               5 FORBIDDEN   PUT from a client not allowed to write; the server closes
 *               6 MISMATCH    PUT: the bytes do not hash to the digest; nothing stored
 *
 * Both decoders are incremental (bytes in any chunking), check lengths
 * before buffering, and report bad bytes as a ChunkProtocolError with a
 * stable code; they never throw.
 */
import { isChunkDigest } from './chunk-digest.ts';
import { ChunkProtocolError } from './errors.ts';

export const MAX_REQUEST_LINE = 128;
export const ChunkStatus = { Ok: 0, Absent: 1, Held: 2, BadRequest: 3, Stored: 4, Forbidden: 5, Mismatch: 6 } as const;
export type ChunkStatus = (typeof ChunkStatus)[keyof typeof ChunkStatus];

export type ChunkRequest =
  | { readonly op: 'HAS' | 'GET'; readonly digest: string }
  | { readonly op: 'PUT'; readonly digest: string; readonly bytes: Uint8Array };

export type ChunkResponse =
  | { readonly status: typeof ChunkStatus.Ok; readonly bytes: Uint8Array }
  | { readonly status: Exclude<ChunkStatus, typeof ChunkStatus.Ok> };

export function encodeRequest(r: ChunkRequest): Uint8Array {
  if (r.op !== 'PUT') return new TextEncoder().encode(`${r.op} ${r.digest}\n`);
  const line = new TextEncoder().encode(`PUT ${r.digest} ${r.bytes.length}\n`);
  const out = new Uint8Array(line.length + r.bytes.length);
  out.set(line);
  out.set(r.bytes, line.length);
  return out;
}

export function encodeResponse(r: ChunkResponse): Uint8Array {
  const body = r.status === ChunkStatus.Ok ? r.bytes : new Uint8Array(0);
  const out = new Uint8Array(5 + body.length);
  out[0] = r.status;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/** Server side: requests out of a byte stream; a PUT body longer than `maxPutBytes` (default 0: no PUT) is refused before it is buffered. */
export class RequestDecoder {
  readonly #maxPut: number;
  #buf = '';
  #failed = false;
  #put: { digest: string; body: Uint8Array; fill: number } | undefined;

  constructor(init: { maxPutBytes?: number } = {}) {
    this.#maxPut = init.maxPutBytes ?? 0;
  }

  push(bytes: Uint8Array): Array<ChunkRequest | ChunkProtocolError> {
    const out: Array<ChunkRequest | ChunkProtocolError> = [];
    if (this.#failed) return out;
    for (let i = 0; i < bytes.length; i++) {
      const put = this.#put;
      if (put !== undefined) {
        const n = Math.min(bytes.length - i, put.body.length - put.fill);
        put.body.set(bytes.subarray(i, i + n), put.fill);
        put.fill += n;
        i += n - 1;
        if (put.fill === put.body.length) {
          out.push({ op: 'PUT', digest: put.digest, bytes: put.body });
          this.#put = undefined;
        }
        continue;
      }
      const b = bytes[i]!;
      if (b === 0x0a) {
        const line = this.#buf;
        this.#buf = '';
        const m = /^(HAS|GET|PUT) (\S+)(?: (\d{1,10}))?$/.exec(line);
        const fail = (why: string): Array<ChunkRequest | ChunkProtocolError> => {
          this.#failed = true;
          out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_REQUEST', why));
          return out;
        };
        if (m === null || !isChunkDigest(m[2]) || (m[1] === 'PUT') !== (m[3] !== undefined)) return fail(`not a chunk request: ${JSON.stringify(line.slice(0, 40))}`);
        if (m[1] !== 'PUT') {
          out.push({ op: m[1] as 'HAS' | 'GET', digest: m[2]! });
          continue;
        }
        const length = Number(m[3]);
        if (length > this.#maxPut) return fail(`a PUT of ${length} bytes is over the limit of ${this.#maxPut}`);
        if (length === 0) out.push({ op: 'PUT', digest: m[2]!, bytes: new Uint8Array(0) });
        else this.#put = { digest: m[2]!, body: new Uint8Array(length), fill: 0 };
        continue;
      }
      if (b < 0x20 || b > 0x7e || this.#buf.length + 1 >= MAX_REQUEST_LINE) {
        this.#failed = true;
        out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_REQUEST', b < 0x20 || b > 0x7e ? 'a request line holds a non-printable byte' : `a request line is longer than ${MAX_REQUEST_LINE} bytes`));
        return out;
      }
      this.#buf += String.fromCharCode(b);
    }
    return out;
  }
}

/** Client side: responses out of a byte stream; a chunk longer than `maxChunkBytes` is refused before it is buffered. */
export class ResponseDecoder {
  readonly #max: number;
  #header = new Uint8Array(5);
  #headerFill = 0;
  #body: Uint8Array | undefined;
  #bodyFill = 0;
  #failed = false;

  constructor(init: { maxChunkBytes: number }) {
    this.#max = init.maxChunkBytes;
  }

  push(bytes: Uint8Array): Array<ChunkResponse | ChunkProtocolError> {
    const out: Array<ChunkResponse | ChunkProtocolError> = [];
    let i = 0;
    while (!this.#failed && i < bytes.length) {
      if (this.#body !== undefined) {
        const n = Math.min(bytes.length - i, this.#body.length - this.#bodyFill);
        this.#body.set(bytes.subarray(i, i + n), this.#bodyFill);
        this.#bodyFill += n;
        i += n;
        if (this.#bodyFill === this.#body.length) {
          out.push({ status: ChunkStatus.Ok, bytes: this.#body });
          this.#body = undefined;
        }
        continue;
      }
      this.#header[this.#headerFill++] = bytes[i++]!;
      if (this.#headerFill < 5) continue;
      this.#headerFill = 0;
      const status = this.#header[0]!;
      const length = new DataView(this.#header.buffer).getUint32(1);
      if (status > ChunkStatus.Mismatch) {
        this.#failed = true;
        out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_STATUS', `unknown response status ${status}`));
      } else if (status !== ChunkStatus.Ok && length !== 0) {
        this.#failed = true;
        out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_LENGTH', `status ${status} carries ${length} bytes`));
      } else if (length > this.#max) {
        this.#failed = true;
        out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_LENGTH', `a chunk of ${length} bytes is over the limit of ${this.#max}`));
      } else if (status === ChunkStatus.Ok) {
        this.#body = new Uint8Array(length);
        this.#bodyFill = 0;
        if (length === 0) {
          out.push({ status: ChunkStatus.Ok, bytes: this.#body });
          this.#body = undefined;
        }
      } else {
        out.push({ status } as ChunkResponse);
      }
    }
    return out;
  }
}
