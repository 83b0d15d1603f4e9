import { VnetError } from '../common/errors.ts';

/**
 * Failures of src/host (the daemon process: the migration channel between
 * daemons and the migration agent), one class per failure, each with a
 * stable code. None of them escapes the migration agent: each becomes the
 * `error` of a `migration` report to the controller.
 */

// ---- the migration channel ------------------------------------------------------

/** The migration channel cannot listen where configured (address in use, not an address of this machine). */
export class ChannelListenError extends VnetError {
  constructor(where: string, cause: Error) {
    super('VNET_ERR_HOST_CHANNEL_LISTEN', `the migration channel cannot listen on ${where}: ${cause.message}`, { cause });
  }
}

/** The first line of a migration channel is not a valid channel hello (malformed, too long, out of range). */
export class ChannelHelloError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_CHANNEL_HELLO', message);
  }
}

/** The peer's certificate does not name the host this migration expects (destination: `from`; source: `to`). */
export class ChannelIdentityError extends VnetError {
  readonly expected: string;
  constructor(expected: string, names: readonly string[]) {
    super('VNET_ERR_HOST_CHANNEL_IDENTITY', `expected host ${expected}, the certificate names ${names.join(', ') || 'nobody'}`);
    this.expected = expected;
  }
}

/** A channel hello names a migration id the destination was not prepared for. */
export class ChannelUnknownIdError extends VnetError {
  readonly id: string;
  constructor(id: string) {
    super('VNET_ERR_HOST_CHANNEL_UNKNOWN_ID', `no migration ${id} is prepared here`);
    this.id = id;
  }
}

/** The TLS handshake and the channel hello did not complete within the deadline. */
export class ChannelTimeoutError extends VnetError {
  constructor(what: string, timeoutMs: number) {
    super('VNET_ERR_HOST_CHANNEL_TIMEOUT', `${what}: no channel handshake within ${timeoutMs} ms`);
  }
}

/** Too many connections were in their handshake at once (from one address, or in all): this one was cut to make room for a newer one. */
export class ChannelBusyError extends VnetError {
  constructor(limit: number) {
    super('VNET_ERR_HOST_CHANNEL_BUSY', `cut to make room: more than ${limit} migration connections in their handshake`);
  }
}

/** The destination answered the channel hello with a refusal (its code in the message and `peerCode`). */
export class ChannelRefusedError extends VnetError {
  readonly peerCode: string;
  constructor(peerCode: string) {
    super('VNET_ERR_HOST_CHANNEL_REFUSED', `the destination refused the channel: ${peerCode}`);
    this.peerCode = peerCode;
  }
}

/** The destination's channel could not be reached, or the connection broke during its handshake. */
export class ChannelConnectError extends VnetError {
  constructor(where: string, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_CHANNEL_CONNECT', `migration channel ${where}: ${message}`, options);
  }
}

/** The wait for a migration's channels ended: cancelled, or the listener closed. */
export class ChannelClosedError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_CHANNEL_CLOSED', message);
  }
}

/** The same migration id is already expected (from another host). */
export class ChannelConflictError extends VnetError {
  constructor(id: string) {
    super('VNET_ERR_HOST_CHANNEL_CONFLICT', `migration ${id} is already expected`);
  }
}

/** The listener already waits for as many migrations as it allows. */
export class ChannelLimitError extends VnetError {
  constructor(limit: number) {
    super('VNET_ERR_HOST_CHANNEL_LIMIT', `already waiting for ${limit} migrations`);
  }
}

// ---- the migration agent ----------------------------------------------------------

/** This daemon cannot migrate: it has no TLS credentials (`tls: {dir}`), or no migration listener. */
export class MigrationUnavailableError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_MIGRATION_UNAVAILABLE', message);
  }
}

/** `migrate-start` names a port with no local VM runtime behind it (or a MAC that is not that VM's). */
export class UnknownVmError extends VnetError {
  readonly port: string;
  constructor(port: string, message: string) {
    super('VNET_ERR_HOST_MIGRATION_UNKNOWN_VM', `port ${port}: ${message}`);
    this.port = port;
  }
}

/** A command that does not fit where the migration stands (commit before ready, abort after commit). */
export class MigrationStateError extends VnetError {
  readonly state: string;
  constructor(command: string, state: string) {
    super('VNET_ERR_HOST_MIGRATION_STATE', `${command} refused: the migration is ${state}`);
    this.state = state;
  }
}

/** A command reuses a migration id for another VM, host or role, or moves a VM another migration holds. */
export class MigrationConflictError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_MIGRATION_CONFLICT', message);
  }
}

/** The destination could not create the VM's held port. */
export class MigrationPortError extends VnetError {
  constructor(port: string, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_MIGRATION_PORT', `port ${port}: ${message}`, options);
  }
}

/** The agent is shutting down: the migration stops where it is. */
export class MigrationAgentClosedError extends VnetError {
  constructor() {
    super('VNET_ERR_HOST_MIGRATION_CLOSED', 'the migration agent is closing');
  }
}

/** Something unexpected failed inside the agent (a bug): reported, never thrown. */
export class MigrationInternalError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_MIGRATION_INTERNAL', message, options);
  }
}

// ---- namespace VMs (namespace-vm.ts) ---------------------------------------------

/** A VM's network namespace that does not exist (no /var/run/netns/NAME). */
export class VmNamespaceNotFoundError extends VnetError {
  readonly netns: string;
  constructor(netns: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_NETNS_NOT_FOUND', `network namespace ${netns} does not exist`, options);
    this.netns = netns;
  }
}

/** A namespace that cannot be a VM's: this process's own (pausing it would freeze the daemon). */
export class VmNamespaceRefusedError extends VnetError {
  readonly netns: string;
  constructor(netns: string, why: string) {
    super('VNET_ERR_VM_NETNS_REFUSED', `network namespace ${netns} cannot be a VM's: ${why}`);
    this.netns = netns;
  }
}

/** Freezing or thawing a VM's processes was refused (EPERM/EACCES: not root, no cgroup delegation). */
export class VmFreezePermissionError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_FREEZE_PERMISSION', message, options);
  }
}

/** A VM's processes did not all stop (or start) within the bound, or the freezer failed otherwise. */
export class VmFreezeError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_FREEZE', message, options);
  }
}

// ---- the daemon's configured ports ------------------------------------------------

/** A configured port could not be set up as its configuration says (namespace missing, address not applied). */
export class PortSetupError extends VnetError {
  readonly port: string;
  constructor(port: string, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_PORT_SETUP', `port ${port}: ${message}`, options);
    this.port = port;
  }
}

// ---- QEMU VMs -----------------------------------------------------------------

/** A QEMU VM could not be started, or QEMU failed under it (its console's last lines in the message). */
export class QemuVmError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_QEMU_VM', message, options);
  }
}

/** QEMU's own migration failed or was cancelled (QEMU's `error-desc` in the message). */
export class QemuMigrationError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_QEMU_MIGRATION', message, options);
  }
}

/** The first line of a QEMU migration channel is not a valid `vnet-qemu/1` header, or does not fit the prepared VM. */
export class QemuStreamHeaderError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_QEMU_HEADER', message);
  }
}

/** A stopped QEMU guest's RAM cannot be read for its digest (no single mapping of its size in the QEMU process, its memory unreadable or short). A failed read names the process, the address and the errno. */
export class QemuRamDigestError extends VnetError {
  readonly pid: number | undefined;
  /** Where the read that failed started. */
  readonly address: number | undefined;
  readonly errno: number | undefined;

  constructor(message: string, options?: { cause?: unknown; pid?: number; address?: number; errno?: number }) {
    super('VNET_ERR_HOST_QEMU_RAM_DIGEST', message, options);
    this.pid = options?.pid;
    this.address = options?.address;
    this.errno = options?.errno;
  }
}

/** The frames a stopped QEMU left unread on its TAP device cannot be read (its descriptor not found, not takeable, or a read failed). */
export class QemuUnreadError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_QEMU_UNREAD', message, options);
  }
}

/** The source's `vnet-qemu-ram/1` line on a QEMU migration's second channel is missing or not valid: the copy cannot be verified. */
export class QemuRamLineError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_HOST_QEMU_RAM_LINE', message);
  }
}

/**
 * The destination's loaded copy of a QEMU guest's RAM differs from the
 * source's stopped guest (QEMU delivered a corrupt copy, e.g. TCG's dirty
 * tracking lost a write): the copy is refused and the source keeps running
 * the guest.
 */
export class QemuMemoryMismatchError extends VnetError {
  readonly source: string;
  readonly destination: string;
  constructor(id: string, source: string, destination: string) {
    super('VNET_ERR_QEMU_MEMORY_MISMATCH', `migration ${id}: the destination's copy of the guest's RAM (xxh64 ${destination}) differs from the source's (xxh64 ${source}); the copy is discarded and the source keeps running the guest`);
    this.source = source;
    this.destination = destination;
  }
}

/** A VM's disk cannot be made from, or used as, its image version (docs/images.md, "A VM's disk from an image"). */
export class ImageDiskError extends VnetError {
  constructor(imageId: string, version: number | undefined, detail: string) {
    super('VNET_ERR_HOST_IMAGE_DISK', `the disk from image ${imageId}${version === undefined ? '' : ` v${version}`}: ${detail}`);
  }
}

// ---- the NBD server (a VM's disk for QEMU) -----------------------------------------

/** A client of the NBD server sent bytes that are not the NBD protocol (a wrong magic, unknown flags, a message past the limits): its connection is closed. */
export class NbdProtocolError extends VnetError {
  constructor(detail: string) {
    super('VNET_ERR_HOST_NBD_PROTOCOL', `NBD: ${detail}`);
  }
}

/** The NBD server cannot serve a VM's disk on its Unix socket (the path is taken by something else, cannot listen, cannot restrict it to its owner). */
export class NbdServerError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_HOST_NBD_SERVER', message, options);
  }
}
