import { VnetError } from '../common/errors.ts';

/** Errors of the control channel's codec, seen by both its ends. */

/** A control message that is not valid JSON or does not match the protocol schema. */
export class ControlMessageError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_CONTROL_MESSAGE', message, options);
  }
}

/** A control message longer than the channel's limit. */
export class ControlMessageTooLargeError extends VnetError {
  readonly length: number;
  readonly max: number;
  constructor(length: number, max: number) {
    super('VNET_ERR_CONTROL_MESSAGE_TOO_LARGE', `control message of ${length} bytes exceeds the maximum of ${max}`);
    this.length = length;
    this.max = max;
  }
}

/** The peer speaks a control-protocol version we do not. */
export class ControlProtocolVersionError extends VnetError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_CONTROL_PROTOCOL_VERSION', `peer speaks control protocol version ${version}; this side speaks ${supported}`);
    this.version = version;
  }
}

/** Why a sequence of parts was refused (control-parts.ts). */
export type PartRefusal = 'count' | 'index' | 'stale' | 'overlap' | 'mismatch' | 'too-many-parts' | 'too-large' | 'timeout' | 'out-of-order' | 'superseded';

/**
 * A part of a split control message that does not fit its sequence: a forged
 * or broken sender. The whole sequence it belongs to is discarded; nothing of
 * it is applied.
 */
export class ControlPartError extends VnetError {
  readonly reason: PartRefusal;
  constructor(reason: PartRefusal, message: string) {
    super('VNET_ERR_CONTROL_PARTS', message);
    this.reason = reason;
  }
}
