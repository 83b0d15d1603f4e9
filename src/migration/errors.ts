import { VnetError } from '../common/errors.ts';

/**
 * Failures of the migration engine, one class per failure with a stable code.
 * Stream decode errors close the migration (both sides abort and the source
 * guest keeps running); they are never thrown past the receiver's entry points.
 */

/** Bytes on a migration stream that do not form a valid record. */
export class MigrationDecodeError extends VnetError {
  constructor(code: `VNET_ERR_MIGRATION_${string}`, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The stream's hello names a protocol version this engine does not speak. */
export class MigrationVersionError extends VnetError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_MIGRATION_VERSION', `migration stream version ${version}; this engine speaks ${supported}`);
    this.version = version;
  }
}

/** A reference or delta could not be resolved: sender and receiver caches disagree. Never expected; aborts. */
export class CacheDesyncError extends VnetError {
  readonly index: number;
  constructor(index: number, message: string) {
    super('VNET_ERR_MIGRATION_CACHE_DESYNC', `page ${index}: ${message}`);
    this.index = index;
  }
}

/** A record arrived that the receiver cannot accept in its state (wrong order, wrong geometry). */
export class MigrationProtocolError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_MIGRATION_PROTOCOL', message);
  }
}

/** At the end, the destination's memory or disk differs from the source's at pause. */
export class MigrationVerifyError extends VnetError {
  readonly what: 'memory' | 'disk' | 'device';
  constructor(what: 'memory' | 'disk' | 'device', expected: string, got: string) {
    super('VNET_ERR_MIGRATION_VERIFY', `${what} digest mismatch: source ${expected}, destination ${got}`);
    this.what = what;
  }
}

export type MigrationAbortReason = 'link' | 'peer' | 'timeout' | 'cancelled' | 'protocol' | 'verify';

/** The migration stopped before completion; the source guest keeps running, untouched. */
export class MigrationAbortedError extends VnetError {
  readonly reason: MigrationAbortReason;
  constructor(reason: MigrationAbortReason, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_MIGRATION_ABORTED', `migration aborted (${reason}): ${message}`, options);
    this.reason = reason;
  }
}
