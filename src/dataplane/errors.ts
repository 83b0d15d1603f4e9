import { VnetError } from '../common/errors.ts';

/** Bytes on a link that do not form a valid message; closes that link only. */
export class FrameDecodeError extends VnetError {
  constructor(code: `VNET_ERR_${string}`, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A message longer than the link's maximum. */
export class FrameTooLargeError extends FrameDecodeError {
  readonly length: number;
  readonly max: number;
  constructor(length: number, max: number) {
    super('VNET_ERR_FRAME_TOO_LARGE', `message of ${length} bytes exceeds the maximum of ${max}`);
    this.length = length;
    this.max = max;
  }
}

/** The peer's hello named a protocol version we do not speak. */
export class ProtocolVersionError extends VnetError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_PROTOCOL_VERSION', `peer speaks protocol version ${version}; this daemon speaks ${supported}`);
    this.version = version;
  }
}

/** The link handshake failed: no hello, wrong host, refused certificate. */
export class HandshakeError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HANDSHAKE', message, options);
  }
}

/** The peer sent nothing (not even a keepalive) for longer than the dead interval. */
export class LinkTimeoutError extends VnetError {
  constructor(peer: string, silentMs: number) {
    super('VNET_ERR_LINK_TIMEOUT', `link to ${peer} silent for ${Math.round(silentMs)} ms`);
  }
}

/** A TAP device could not be opened, configured, read or written. */
export class TapError extends VnetError {
  readonly errno: number | undefined;
  constructor(message: string, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_TAP', message, options);
    this.errno = errno;
  }
}

/** A forwarding rule that is not well-formed (bad MAC, unknown action, missing target). */
export class RuleError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_RULE', message);
  }
}
