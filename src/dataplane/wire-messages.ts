import type { LinkKind } from '../control/daemon-control.ts';
import { MAX_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { BadMagicError, MalformedMessageError, type FrameDecodeError } from './errors.ts';

/**
 * The messages of the vnet tunnel protocol, version 1, other than frames:
 * constants, types, and the encoders and body decoders of hello, keepalive
 * and goodbye (docs/wire-protocol.md has the bytes). The frame stream —
 * encoder and incremental decoder — is frame-codec.ts, which re-exports all
 * of this.
 */

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 4;
/** "VNET" in ASCII, the first four bytes of every hello body. */
export const HELLO_MAGIC = Buffer.from('VNET', 'latin1');
export const MAX_HELLO_BYTES = 1024;
export const MAX_GOODBYE_REASON_BYTES = 512;
/** Largest body of any version-1 message: an offload frame carrying a full GSO super-frame. */
export const DEFAULT_MAX_MESSAGE_BYTES = VIRTIO_NET_HDR_BYTES + MAX_FRAME_BYTES;
/** Largest body length the 24-bit length field can express. */
export const MAX_WIRE_LENGTH = 0xff_ffff;

export const MessageType = {
  hello: 0x01,
  frame: 0x02,
  offloadFrame: 0x03,
  keepalive: 0x04,
  goodbye: 0x05,
} as const;

export type { LinkKind } from '../control/daemon-control.ts';
export type LinkRole = 'dialer' | 'listener';

const KIND_CODES: Record<LinkKind, number> = { backbone: 1, 'fast-path': 2 };
const ROLE_CODES: Record<LinkRole, number> = { dialer: 1, listener: 2 };
const KINDS: readonly (LinkKind | undefined)[] = [undefined, 'backbone', 'fast-path'];
const ROLES: readonly (LinkRole | undefined)[] = [undefined, 'dialer', 'listener'];

/** Why a link was closed; travels as one byte in the goodbye. */
export const GOODBYE_CODES = ['normal', 'version', 'refused', 'protocol', 'timeout'] as const;
export type GoodbyeCode = (typeof GOODBYE_CODES)[number] | 'unknown';


export interface HelloMessage {
  readonly type: 'hello';
  readonly version: typeof PROTOCOL_VERSION;
  readonly kind: LinkKind;
  readonly role: LinkRole;
  readonly hostId: string;
}

/** A hello with the magic but a version we do not speak; the rest of its body is not interpreted. */
export interface ForeignHelloMessage {
  readonly type: 'foreign-hello';
  readonly version: number;
}

export interface KeepaliveMessage {
  readonly type: 'keepalive';
}

export interface GoodbyeMessage {
  readonly type: 'goodbye';
  readonly code: GoodbyeCode;
  readonly reason: string;
}

export type ControlMessage = HelloMessage | ForeignHelloMessage | KeepaliveMessage | GoodbyeMessage;

export const KEEPALIVE: KeepaliveMessage = Object.freeze({ type: 'keepalive' });

const KEEPALIVE_BYTES = Buffer.from([MessageType.keepalive, 0, 0, 0]);

function header(type: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b[0] = type;
  b.writeUIntBE(length, 1, 3);
  return b;
}

export function encodeHello(hello: Omit<HelloMessage, 'type' | 'version'> & { version?: number }): Buffer {
  if (!HOST_ID_PATTERN.test(hello.hostId)) throw new RangeError(`not a host id: ${JSON.stringify(hello.hostId)}`);
  const id = Buffer.from(hello.hostId, 'latin1');
  const body = Buffer.allocUnsafe(8 + id.length);
  HELLO_MAGIC.copy(body, 0);
  body[4] = hello.version ?? PROTOCOL_VERSION;
  body[5] = KIND_CODES[hello.kind];
  body[6] = ROLE_CODES[hello.role];
  body[7] = id.length;
  id.copy(body, 8);
  return Buffer.concat([header(MessageType.hello, body.length), body]);
}

export function encodeKeepalive(): Buffer {
  return KEEPALIVE_BYTES;
}

export function encodeGoodbye(code: GoodbyeCode, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > MAX_GOODBYE_REASON_BYTES) text = text.subarray(0, MAX_GOODBYE_REASON_BYTES);
  const index = GOODBYE_CODES.indexOf(code as (typeof GOODBYE_CODES)[number]);
  const out = Buffer.allocUnsafe(HEADER_BYTES + 1 + text.length);
  out[0] = MessageType.goodbye;
  out.writeUIntBE(1 + text.length, 1, 3);
  out[4] = index < 0 ? 0xff : index;
  text.copy(out, 5);
  return out;
}

export function decodeHelloBody(buf: Buffer, start: number, end: number): HelloMessage | ForeignHelloMessage | FrameDecodeError {
  if (buf[start] !== 0x56 || buf[start + 1] !== 0x4e || buf[start + 2] !== 0x45 || buf[start + 3] !== 0x54) {
    return new BadMagicError(buf.subarray(start, start + 4).toString('hex'));
  }
  const version = buf[start + 4]!;
  if (version !== PROTOCOL_VERSION) return { type: 'foreign-hello', version };
  if (end - start < 8) return new MalformedMessageError(`version-1 hello of ${end - start} bytes is too short`);
  const kind = KINDS[buf[start + 5]!];
  const role = ROLES[buf[start + 6]!];
  const idLength = buf[start + 7]!;
  if (kind === undefined) return new MalformedMessageError(`hello names unknown link kind ${buf[start + 5]}`);
  if (role === undefined) return new MalformedMessageError(`hello names unknown role ${buf[start + 6]}`);
  if (end - start !== 8 + idLength) return new MalformedMessageError(`hello host id length ${idLength} does not match its body of ${end - start} bytes`);
  const hostId = buf.toString('latin1', start + 8, end);
  if (!HOST_ID_PATTERN.test(hostId)) return new MalformedMessageError(`hello names an invalid host id ${JSON.stringify(hostId)}`);
  return { type: 'hello', version: PROTOCOL_VERSION, kind, role, hostId };
}

export function decodeGoodbyeBody(buf: Buffer, start: number, end: number): GoodbyeMessage {
  const code = GOODBYE_CODES[buf[start]!] ?? 'unknown';
  return { type: 'goodbye', code, reason: buf.toString('utf8', start + 1, end) };
}

