import { randomBytes } from 'node:crypto';
import type { LinkKind } from '../control/daemon-control.ts';
import { MAX_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { BadMagicError, MalformedMessageError, type FrameDecodeError } from './errors.ts';

/**
 * The messages of the vnet tunnel protocol, version 2, other than frames:
 * constants, types, and the encoders and body decoders of hello, auth,
 * keepalive and goodbye (docs/wire-protocol.md has the bytes). Version 2
 * added the hello's authentication method and nonce and the auth message
 * (link-auth.ts). The frame stream —
 * encoder and incremental decoder — is frame-codec.ts.
 */

export const PROTOCOL_VERSION = 2;
export const HEADER_BYTES = 4;
/** "VNET" in ASCII, the first four bytes of every hello body. */
export const HELLO_MAGIC = Buffer.from('VNET', 'latin1');
export const MAX_HELLO_BYTES = 1024;
export const MAX_GOODBYE_REASON_BYTES = 512;
/** Bytes of the fresh random nonce each side puts in its hello. */
export const NONCE_BYTES = 32;
/** Largest certificate (DER) an auth message may carry. */
export const MAX_AUTH_CERTIFICATE_BYTES = 4096;
/** Largest proof (an HMAC-SHA256, or an ECDSA signature in DER) an auth message may carry. */
export const MAX_AUTH_PROOF_BYTES = 512;
/** Largest auth body: certificate length, certificate, proof. */
export const MAX_AUTH_BYTES = 2 + MAX_AUTH_CERTIFICATE_BYTES + MAX_AUTH_PROOF_BYTES;
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
  auth: 0x06,
  echoRequest: 0x07,
  echoReply: 0x08,
} as const;

/** Body of an echo request or reply: an opaque token the reply returns unchanged. */
export const ECHO_TOKEN_BYTES = 8;

export type { LinkKind } from '../control/daemon-control.ts';
export type LinkRole = 'dialer' | 'listener';

const KIND_CODES: Record<LinkKind, number> = { backbone: 1, 'fast-path': 2 };
const ROLE_CODES: Record<LinkRole, number> = { dialer: 1, listener: 2 };
const KINDS: readonly (LinkKind | undefined)[] = [undefined, 'backbone', 'fast-path'];
const ROLES: readonly (LinkRole | undefined)[] = [undefined, 'dialer', 'listener'];

/**
 * How a side proves its host id (one byte in the hello): `none` (TLS links,
 * whose certificates already did, and unauthenticated TCP), `link-key` (an
 * HMAC with the deployment's shared link key), `certificate` (a signature
 * with the host certificate's key).
 */
export const AUTH_METHODS = ['none', 'link-key', 'certificate'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** Why a link was closed; travels as one byte in the goodbye. */
export const GOODBYE_CODES = ['normal', 'version', 'refused', 'protocol', 'timeout', 'auth'] as const;
export type GoodbyeCode = (typeof GOODBYE_CODES)[number] | 'unknown';


export interface HelloMessage {
  readonly type: 'hello';
  readonly version: typeof PROTOCOL_VERSION;
  readonly kind: LinkKind;
  readonly role: LinkRole;
  readonly hostId: string;
  readonly auth: AuthMethod;
  /** NONCE_BYTES fresh random bytes: the other side's proof covers them. */
  readonly nonce: Buffer;
}

/** The proof of a side's identity over the handshake transcript (link-auth.ts). */
export interface AuthMessage {
  readonly type: 'auth';
  /** The signer's certificate, DER (empty for link-key proofs). */
  readonly certificate: Buffer;
  readonly proof: Buffer;
}

/** A hello with the magic but a version we do not speak; the rest of its body is not interpreted. */
export interface ForeignHelloMessage {
  readonly type: 'foreign-hello';
  readonly version: number;
}

export interface KeepaliveMessage {
  readonly type: 'keepalive';
}

/** A round-trip probe (request) and its answer (reply, the same token): the link's RTT. */
export interface EchoMessage {
  readonly type: 'echo-request' | 'echo-reply';
  readonly token: Buffer;
}

export interface GoodbyeMessage {
  readonly type: 'goodbye';
  readonly code: GoodbyeCode;
  readonly reason: string;
}

export type ControlMessage = HelloMessage | ForeignHelloMessage | AuthMessage | KeepaliveMessage | EchoMessage | GoodbyeMessage;

export const KEEPALIVE: KeepaliveMessage = Object.freeze({ type: 'keepalive' });

const KEEPALIVE_BYTES = Buffer.from([MessageType.keepalive, 0, 0, 0]);

function header(type: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b[0] = type;
  b.writeUIntBE(length, 1, 3);
  return b;
}

/** A hello; `auth` defaults to none and `nonce` to fresh random bytes. */
export function encodeHello(hello: Omit<HelloMessage, 'type' | 'version' | 'auth' | 'nonce'> & { version?: number; auth?: AuthMethod; nonce?: Buffer }): Buffer {
  if (!HOST_ID_PATTERN.test(hello.hostId)) throw new RangeError(`not a host id: ${JSON.stringify(hello.hostId)}`);
  const nonce = hello.nonce ?? randomBytes(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`a hello nonce is ${NONCE_BYTES} bytes, not ${nonce.length}`);
  const id = Buffer.from(hello.hostId, 'latin1');
  const body = Buffer.allocUnsafe(HELLO_FIXED_BYTES + id.length);
  HELLO_MAGIC.copy(body, 0);
  body[4] = hello.version ?? PROTOCOL_VERSION;
  body[5] = KIND_CODES[hello.kind];
  body[6] = ROLE_CODES[hello.role];
  body[7] = AUTH_METHODS.indexOf(hello.auth ?? 'none');
  nonce.copy(body, 8);
  body[8 + NONCE_BYTES] = id.length;
  id.copy(body, HELLO_FIXED_BYTES);
  return Buffer.concat([header(MessageType.hello, body.length), body]);
}

/** Bytes of a version-2 hello body before the host id. */
const HELLO_FIXED_BYTES = 9 + NONCE_BYTES;

export function encodeAuth(auth: Omit<AuthMessage, 'type'>): Buffer {
  if (auth.certificate.length > MAX_AUTH_CERTIFICATE_BYTES) throw new RangeError(`certificate of ${auth.certificate.length} bytes is over ${MAX_AUTH_CERTIFICATE_BYTES}`);
  if (auth.proof.length === 0 || auth.proof.length > MAX_AUTH_PROOF_BYTES) throw new RangeError(`a proof is 1..${MAX_AUTH_PROOF_BYTES} bytes, not ${auth.proof.length}`);
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(auth.certificate.length, 0);
  return Buffer.concat([header(MessageType.auth, 2 + auth.certificate.length + auth.proof.length), len, auth.certificate, auth.proof]);
}

/** An echo request or reply carrying `token` (ECHO_TOKEN_BYTES). */
export function encodeEcho(type: EchoMessage['type'], token: Buffer): Buffer {
  if (token.length !== ECHO_TOKEN_BYTES) throw new RangeError(`an echo token is ${ECHO_TOKEN_BYTES} bytes, not ${token.length}`);
  return Buffer.concat([header(type === 'echo-request' ? MessageType.echoRequest : MessageType.echoReply, ECHO_TOKEN_BYTES), token]);
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
  if (end - start < HELLO_FIXED_BYTES) return new MalformedMessageError(`version-${PROTOCOL_VERSION} hello of ${end - start} bytes is too short`);
  const kind = KINDS[buf[start + 5]!];
  const role = ROLES[buf[start + 6]!];
  const auth = AUTH_METHODS[buf[start + 7]!];
  const idLength = buf[start + 8 + NONCE_BYTES]!;
  if (kind === undefined) return new MalformedMessageError(`hello names unknown link kind ${buf[start + 5]}`);
  if (role === undefined) return new MalformedMessageError(`hello names unknown role ${buf[start + 6]}`);
  if (auth === undefined) return new MalformedMessageError(`hello names unknown authentication method ${buf[start + 7]}`);
  if (end - start !== HELLO_FIXED_BYTES + idLength) return new MalformedMessageError(`hello host id length ${idLength} does not match its body of ${end - start} bytes`);
  const hostId = buf.toString('latin1', start + HELLO_FIXED_BYTES, end);
  if (!HOST_ID_PATTERN.test(hostId)) return new MalformedMessageError(`hello names an invalid host id ${JSON.stringify(hostId)}`);
  const nonce = Buffer.from(buf.subarray(start + 8, start + 8 + NONCE_BYTES));
  return { type: 'hello', version: PROTOCOL_VERSION, kind, role, hostId, auth, nonce };
}

export function decodeAuthBody(buf: Buffer, start: number, end: number): AuthMessage | FrameDecodeError {
  if (end - start < 3) return new MalformedMessageError(`auth of ${end - start} bytes is too short`);
  const certLength = buf.readUInt16BE(start);
  if (certLength > MAX_AUTH_CERTIFICATE_BYTES) return new MalformedMessageError(`auth certificate of ${certLength} bytes is over ${MAX_AUTH_CERTIFICATE_BYTES}`);
  const proofStart = start + 2 + certLength;
  if (proofStart >= end) return new MalformedMessageError(`auth certificate length ${certLength} leaves no proof in a body of ${end - start} bytes`);
  if (end - proofStart > MAX_AUTH_PROOF_BYTES) return new MalformedMessageError(`auth proof of ${end - proofStart} bytes is over ${MAX_AUTH_PROOF_BYTES}`);
  return { type: 'auth', certificate: Buffer.from(buf.subarray(start + 2, proofStart)), proof: Buffer.from(buf.subarray(proofStart, end)) };
}

export function decodeGoodbyeBody(buf: Buffer, start: number, end: number): GoodbyeMessage {
  const code = GOODBYE_CODES[buf[start]!] ?? 'unknown';
  return { type: 'goodbye', code, reason: buf.toString('utf8', start + 1, end) };
}

