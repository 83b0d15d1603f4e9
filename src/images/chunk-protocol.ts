/**
 * The chunk protocol between sites' daemons, inside a mutual-TLS 1.3
 * connection (chunk-server.ts, remote-chunk-source.ts); docs/images.md.
 *
 *   request   one ASCII line: "HAS <digest>\n" or "GET <digest>\n"
 *             (at most MAX_REQUEST_LINE bytes with the newline)
 *   response  a 5-byte header — status (u8), length (u32 big-endian) —
 *             then `length` bytes of chunk for OK, none otherwise:
 *               0 OK          the chunk's bytes follow (GET)
 *               1 ABSENT      not held here (HAS or GET)
 *               2 HELD        held here (HAS)
 *               3 BAD_REQUEST the line was not a request; the server closes
 *
 * Both decoders are incremental (bytes in any chunking), check lengths
 * before buffering, and report bad bytes as a ChunkProtocolError with a
 * stable code; they never throw.
 */
import { isChunkDigest } from './chunk-digest.ts';
import { ChunkProtocolError } from './errors.ts';

export const MAX_REQUEST_LINE = 128;
export const ChunkStatus = { Ok: 0, Absent: 1, Held: 2, BadRequest: 3 } as const;
export type ChunkStatus = (typeof ChunkStatus)[keyof typeof ChunkStatus];

export interface ChunkRequest {
  readonly op: 'HAS' | 'GET';
  readonly digest: string;
}

export type ChunkResponse =
  | { readonly status: typeof ChunkStatus.Ok; readonly bytes: Uint8Array }
  | { readonly status: typeof ChunkStatus.Absent | typeof ChunkStatus.Held | typeof ChunkStatus.BadRequest };

export function encodeRequest(r: ChunkRequest): Uint8Array {
  return new TextEncoder().encode(`${r.op} ${r.digest}\n`);
}

export function encodeResponse(r: ChunkResponse): Uint8Array {
  const body = r.status === ChunkStatus.Ok ? r.bytes : new Uint8Array(0);
  const out = new Uint8Array(5 + body.length);
  out[0] = r.status;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/** Server side: request lines out of a byte stream. */
export class RequestDecoder {
  #buf = '';
  #failed = false;

  push(bytes: Uint8Array): Array<ChunkRequest | ChunkProtocolError> {
    const out: Array<ChunkRequest | ChunkProtocolError> = [];
    if (this.#failed) return out;
    for (const b of bytes) {
      if (b === 0x0a) {
        const line = this.#buf;
        this.#buf = '';
        const m = /^(HAS|GET) (\S+)$/.exec(line);
        if (m === null || !isChunkDigest(m[2])) {
          this.#failed = true;
          out.push(new ChunkProtocolError('VNET_ERR_IMAGE_PROTOCOL_REQUEST', `not a chunk request: ${JSON.stringify(line.slice(0, 40))}`));
          return out;
        }
        out.push({ op: m[1] as 'HAS' | 'GET', digest: m[2]! });
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
      if (status > ChunkStatus.BadRequest) {
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
