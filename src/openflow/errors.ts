/**
 * The OpenFlow module's errors. The module is self-contained (node built-ins
 * only), so it has its own base class; every failure has a stable `code`
 * (VNET_ERR_OF_…) to branch on, never the message.
 */
export class OpenFlowError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bytes on the wire that are not a valid OpenFlow 1.3 message; the decoder stops at the first one. */
export class OpenFlowDecodeError extends OpenFlowError {}

/** A message header whose length is under 8 bytes or over the decoder's limit. */
export class BadLengthError extends OpenFlowDecodeError {
  constructor(length: number, limit: { min: number } | { max: number }) {
    const why = 'min' in limit ? `under the ${limit.min}-byte minimum` : `over the ${limit.max}-byte limit`;
    super('VNET_ERR_OF_BAD_LENGTH', `OpenFlow message length ${length} is ${why}`);
  }
}

/** A message other than HELLO whose version is not 0x04 (OpenFlow 1.3). */
export class BadVersionError extends OpenFlowDecodeError {
  readonly version: number;
  constructor(version: number) {
    super('VNET_ERR_OF_BAD_VERSION', `OpenFlow version 0x${version.toString(16).padStart(2, '0')} where 0x04 (OpenFlow 1.3) was negotiated`);
    this.version = version;
  }
}

/** A message type this codec does not know. */
export class UnknownTypeError extends OpenFlowDecodeError {
  readonly messageType: number;
  constructor(messageType: number) {
    super('VNET_ERR_OF_UNKNOWN_TYPE', `unknown OpenFlow 1.3 message type ${messageType}`);
    this.messageType = messageType;
  }
}

/** A message of a known type whose body is inconsistent: names the message and the field. */
export class MalformedMessageError extends OpenFlowDecodeError {
  constructor(message: string) {
    super('VNET_ERR_OF_MALFORMED', message);
  }
}

/** A value the encoder cannot put on the wire (out of range, wrong length). */
export class EncodeError extends OpenFlowError {
  constructor(message: string) {
    super('VNET_ERR_OF_ENCODE', message);
  }
}

/** HELLO negotiation found no version in common (the peer gets OFPET_HELLO_FAILED first). */
export class VersionNegotiationError extends OpenFlowError {
  constructor(peer: string) {
    super('VNET_ERR_OF_NO_COMMON_VERSION', `no OpenFlow version in common: this side speaks 1.3 (0x04), the peer ${peer}`);
  }
}

/** A switch connection that failed: handshake deadline, liveness, protocol error or socket error. */
export class SwitchConnectionError extends OpenFlowError {}

/** A request to a switch that was answered with an OFPT_ERROR. */
export class SwitchRejectedError extends OpenFlowError {
  readonly errorType: number;
  readonly errorCode: number;
  constructor(what: string, errorType: number, errorCode: number, name: string) {
    super('VNET_ERR_OF_REJECTED', `the switch rejected ${what}: ${name} (type ${errorType}, code ${errorCode})`);
    this.errorType = errorType;
    this.errorCode = errorCode;
  }
}
