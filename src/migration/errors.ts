import { VnetError } from '../common/errors.ts';

/**
 * Failures of src/migration, one class per failure, each with a stable code:
 * the migration stream and engine first, then the guest-trace work (the QMP
 * client, the QEMU recorder and the trace file format).
 *
 * Stream decode errors close the migration (both sides abort and the source
 * guest keeps running); they are never thrown past the receiver's entry points.
 */

// ---- migration stream decoding -------------------------------------------------

/** Base of every stream decoding failure: bytes on a migration stream that do not form a valid record. */
export abstract class MigrationDecodeError extends VnetError {
  protected constructor(code: `VNET_ERR_MIGRATION_${string}`, message: string) {
    super(code, message);
  }
}

/** A record's length field is 0 or above the decoder's limit. */
export class RecordLengthError extends MigrationDecodeError {
  readonly length: number;
  constructor(length: number, max: number) {
    super('VNET_ERR_MIGRATION_RECORD_LENGTH', `record length ${length} outside 1..${max}`);
    this.length = length;
  }
}

/** A record's body does not have its kind's size (or a length inside it overruns the record). */
export class RecordSizeError extends MigrationDecodeError {
  constructor(message: string) {
    super('VNET_ERR_MIGRATION_RECORD_SIZE', message);
  }
}

/** An unknown record kind, or the disk bit on a kind that cannot name a disk block. */
export class RecordKindError extends MigrationDecodeError {
  readonly kind: number;
  constructor(kind: number, message: string) {
    super('VNET_ERR_MIGRATION_RECORD_KIND', message);
    this.kind = kind;
  }
}

/** A hello with flags this engine does not know. */
export class RecordFlagsError extends MigrationDecodeError {
  readonly flags: number;
  constructor(flags: number) {
    super('VNET_ERR_MIGRATION_RECORD_FLAGS', `unknown hello flags 0x${flags.toString(16)}`);
    this.flags = flags;
  }
}

/** The hello does not carry the stream magic: not a vnet migration stream. */
export class StreamMagicError extends MigrationDecodeError {
  constructor() {
    super('VNET_ERR_MIGRATION_MAGIC', 'not a vnet migration stream');
  }
}

/** The stream's hello names a protocol version this engine does not speak. */
export class MigrationVersionError extends MigrationDecodeError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_MIGRATION_VERSION', `migration stream version ${version}; this engine speaks ${supported}`);
    this.version = version;
  }
}

// ---- migration engine ------------------------------------------------------------

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

/** The engine broke one of its own invariants: a bug, never bad input. Fails loudly. */
export class MigrationInvariantError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_MIGRATION_INVARIANT', message);
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

// ---- QMP -------------------------------------------------------------------

/** The QMP socket could not be reached, or the greeting/capabilities handshake failed. */
export class QmpConnectError extends VnetError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_QMP_CONNECT', `QMP ${path}: ${message}`, options);
    this.path = path;
  }
}

/** The peer sent bytes that are not QMP: an over-long line, invalid JSON, a message of unknown shape. */
export class QmpProtocolError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_QMP_PROTOCOL', message, options);
  }
}

/** QEMU answered a command with `{"error": {...}}`. */
export class QmpCommandError extends VnetError {
  readonly command: string;
  /** QMP's error class, e.g. GenericError, CommandNotFound, DeviceNotFound. */
  readonly errorClass: string;
  readonly desc: string;
  constructor(command: string, errorClass: string, desc: string) {
    super('VNET_ERR_QMP_COMMAND', `QMP ${command} failed: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** No answer (or no awaited event) within the deadline. */
export class QmpTimeoutError extends VnetError {
  readonly what: string;
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super('VNET_ERR_QMP_TIMEOUT', `QMP: no ${what} within ${timeoutMs} ms`);
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

/** The connection closed (QEMU exited, or `close()` was called) with a command outstanding. */
export class QmpClosedError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_QMP_CLOSED', message, options);
  }
}

// ---- recorder ----------------------------------------------------------------

/** The guest kernel or initramfs is missing, or the build script failed. */
export class GuestImageError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_GUEST_IMAGE', message, options);
  }
}

/** QEMU could not be started, or exited before the recording finished. */
export class QemuProcessError extends VnetError {
  /** The last lines QEMU printed (serial console and stderr), for the operator. */
  readonly outputTail: string;
  constructor(message: string, outputTail: string, options?: { cause?: unknown }) {
    super('VNET_ERR_QEMU_PROCESS', outputTail ? `${message}\n--- QEMU output (tail) ---\n${outputTail}` : message, options);
    this.outputTail = outputTail;
  }
}

/** The guest did not print its workload-start marker within the boot deadline. */
export class GuestBootTimeoutError extends VnetError {
  readonly outputTail: string;
  constructor(timeoutMs: number, outputTail: string) {
    super('VNET_ERR_GUEST_BOOT_TIMEOUT', `guest did not start its workload within ${timeoutMs} ms\n--- console (tail) ---\n${outputTail}`);
    this.outputTail = outputTail;
  }
}

/** The recording was aborted through its AbortSignal. */
export class RecordingAbortedError extends VnetError {
  constructor(options?: { cause?: unknown }) {
    super('VNET_ERR_RECORDING_ABORTED', 'trace recording aborted', options);
  }
}

// ---- trace file ----------------------------------------------------------------

/** Base of every trace-file decoding failure: names where in the file it went wrong. */
export class TraceFormatError extends VnetError {
  /** Byte offset in the file where the problem was found. */
  readonly offset: number;
  /** Snapshot record index, when the problem is inside one. */
  readonly snapshot: number | undefined;
  constructor(code: `VNET_ERR_${string}`, message: string, offset: number, snapshot?: number, options?: { cause?: unknown }) {
    const where = snapshot === undefined ? `at byte ${offset}` : `in snapshot ${snapshot} at byte ${offset}`;
    super(code, `trace file ${where}: ${message}`, options);
    this.offset = offset;
    this.snapshot = snapshot;
  }
}

/** The file does not start with the trace magic: not a vnet trace. */
export class TraceMagicError extends TraceFormatError {
  constructor() {
    super('VNET_ERR_TRACE_MAGIC', 'not a vnet guest trace (bad magic)', 0);
  }
}

/** A format version this decoder does not read. */
export class TraceVersionError extends TraceFormatError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_TRACE_VERSION', `format version ${version}; this decoder reads version ${supported}`, 8);
    this.version = version;
  }
}

/** The file ends inside the header or a record. */
export class TraceTruncatedError extends TraceFormatError {
  constructor(needed: number, available: number, offset: number, snapshot?: number) {
    super('VNET_ERR_TRACE_TRUNCATED', `truncated: needs ${needed} more bytes, ${available} left`, offset, snapshot);
  }
}

/** A record's body does not match its CRC-32. */
export class TraceChecksumError extends TraceFormatError {
  constructor(expected: number, actual: number, offset: number, snapshot: number) {
    super('VNET_ERR_TRACE_CHECKSUM', `body CRC-32 is ${hex(actual)}, header says ${hex(expected)}`, offset, snapshot);
  }
}

/** A field holds a value the format does not allow (named in the message). */
export class TraceCorruptError extends TraceFormatError {
  readonly field: string;
  constructor(field: string, message: string, offset: number, snapshot?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_TRACE_CORRUPT', `${field}: ${message}`, offset, snapshot, options);
    this.field = field;
  }
}

/** A well-formed value that exceeds the decoder's limits (guest size, record size, metadata size). */
export class TraceLimitError extends TraceFormatError {
  readonly limit: string;
  constructor(limit: string, value: number, max: number, offset: number, snapshot?: number) {
    super('VNET_ERR_TRACE_LIMIT', `${limit} is ${value}, the limit is ${max}`, offset, snapshot);
    this.limit = limit;
  }
}

/** A snapshot appended to a trace writer that is already closed. */
export class TraceWriterClosedError extends VnetError {
  constructor() {
    super('VNET_ERR_TRACE_WRITER_CLOSED', 'the trace writer is closed');
  }
}

/** The writer never finished the file (snapshot count not written), or it holds no snapshot. */
export class TraceUnfinishedError extends TraceFormatError {
  constructor(message: string, offset: number) {
    super('VNET_ERR_TRACE_UNFINISHED', message, offset);
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
