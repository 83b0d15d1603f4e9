import { VnetError } from '../common/errors.ts';

/**
 * Errors of the controller area. Each failure has its own class and a stable
 * code; the control channel sends the code back to the daemon in an `error`
 * message, and the API maps them to HTTP statuses.
 */

/** The database could not be opened, or its schema is newer than this program knows. */
export class StoreError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_STORE', message, options);
  }
}

/** A schema migration failed; the database is left at the previous version. */
export class SchemaMigrationError extends VnetError {
  readonly version: number;
  constructor(version: number, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_SCHEMA_MIGRATION', `schema migration to version ${version} failed: ${message}`, options);
    this.version = version;
  }
}

/** A message that is well-formed but not allowed now (before hello, second hello, wrong host). */
export class ControlStateError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_CONTROL_STATE', message);
  }
}

/** A connection that had not said a good hello was dropped: its deadline passed, or a newcomer took its slot (retry). */
export class PendingDroppedError extends VnetError {
  readonly reason: string;
  constructor(reason: string) {
    super('VNET_ERR_CONTROL_PENDING_DROPPED', `connection dropped before its hello was complete (${reason === 'evicted-source' ? 'too many pending connections from this address' : 'too many pending connections'}); a newer one took its place`);
    this.reason = reason;
  }
}

/** The daemon could not prove who it is: no valid certificate, and no valid join token or host credential. */
export class ControlAuthError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_CONTROL_AUTH', message);
  }
}

export type JoinTokenRefusal = 'unknown' | 'expired' | 'used' | 'wrong-host' | 'revoked' | 'host-has-identity';

/**
 * A join token that is unknown, expired, already used, revoked or bound to
 * another host; or one presented for a host that already has an identity (a
 * certificate or a credential), which a token never replaces.
 */
export class JoinTokenError extends VnetError {
  readonly reason: JoinTokenRefusal;
  constructor(reason: JoinTokenRefusal, message: string) {
    super('VNET_ERR_JOIN_TOKEN', message);
    this.reason = reason;
  }
}

/** An access request (join token, API token) with a bad or missing argument; names it. */
export class AccessRequestError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_INVALID_ARGUMENT', message);
  }
}

/** The daemon said hello as a host the deployment does not name. */
export class UnknownHostError extends VnetError {
  readonly hostId: string;
  constructor(hostId: string) {
    super('VNET_ERR_UNKNOWN_HOST', `host ${JSON.stringify(hostId)} is not in the deployment`);
    this.hostId = hostId;
  }
}

/** An operator command or API path naming something that does not exist (host, VM, link, migration). */
export class NotFoundError extends VnetError {
  constructor(what: string) {
    super('VNET_ERR_NOT_FOUND', `${what} not found`);
  }
}

/** An operator command that conflicts with the current state (link to itself, duplicate). */
export class ConflictError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_CONFLICT', message);
  }
}

/** The deployment CA is not in the TLS directory: the controller cannot authenticate daemons. */
export class MissingCaError extends VnetError {
  readonly tlsDir: string;
  constructor(tlsDir: string) {
    super('VNET_ERR_NO_CA', `no deployment CA in ${tlsDir}: run \`vnet certs init --dir ${tlsDir}\` first`);
    this.tlsDir = tlsDir;
  }
}


// ---- live migration (migration-requests.ts) ---------------------------------

/** A migration request names a VM the registry does not have (by MAC or name). */
export class MigrationUnknownVmError extends VnetError {
  constructor(vm: string) {
    super('VNET_ERR_MIGRATION_UNKNOWN_VM', `VM ${JSON.stringify(vm)} not found (name it by MAC or by name)`);
  }
}

/** A migration request names a destination host the deployment does not have. */
export class MigrationUnknownHostError extends VnetError {
  constructor(host: string) {
    super('VNET_ERR_MIGRATION_UNKNOWN_HOST', `host ${JSON.stringify(host)} not found`);
  }
}

/** No migration of that id. */
export class MigrationNotFoundError extends VnetError {
  constructor(id: string) {
    super('VNET_ERR_MIGRATION_NOT_FOUND', `migration ${JSON.stringify(id)} not found`);
  }
}

/** The VM already runs on the destination (or is placed nowhere). */
export class MigrationSameHostError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_MIGRATION_SAME_HOST', message);
  }
}

/** The VM is being migrated already. */
export class MigrationInProgressError extends VnetError {
  readonly migrationId: string;
  constructor(vm: string, migrationId: string) {
    super('VNET_ERR_MIGRATION_IN_PROGRESS', `VM ${vm} is already migrating (migration ${migrationId})`);
    this.migrationId = migrationId;
  }
}

/** A host the migration needs (source or destination) has no connected daemon, or the source does not report the VM's port. */
export class MigrationHostDownError extends VnetError {
  readonly host: string;
  constructor(host: string, message: string) {
    super('VNET_ERR_MIGRATION_HOST_DOWN', message);
    this.host = host;
  }
}

/** Cancel after the commit point: the VM is the destination's now; the migration runs to its end. */
export class MigrationCommittedError extends VnetError {
  constructor(id: string, step: string) {
    super('VNET_ERR_MIGRATION_COMMITTED', `migration ${id} is past its commit point (${step}): it cannot be cancelled`);
  }
}

/** Cancel of a migration that has already ended (or is being aborted). */
export class MigrationFinishedError extends VnetError {
  constructor(id: string, step: string) {
    super('VNET_ERR_MIGRATION_FINISHED', `migration ${id} has already ended or is being aborted (${step})`);
  }
}

/** A migration request with a bad argument (time-bound without a deadline, a deadline out of range). */
export class MigrationRequestError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_MIGRATION_REQUEST', message);
  }
}

/** No etcd endpoint answered (refused, reset or timed out on every one). */
export class EtcdUnavailableError extends VnetError {
  constructor(endpoints: readonly string[], cause: unknown) {
    super('VNET_ERR_ETCD_UNAVAILABLE', `no etcd endpoint answered (${endpoints.join(', ')}): ${(cause as Error | undefined)?.message ?? 'unknown error'}`, { cause });
  }
}

/** etcd answered, refusing the request (bad request, lease not found, too many operations, ...). */
export class EtcdRequestError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_ETCD_REQUEST', message, options);
  }
}

/** A write on a replica that does not hold the leadership: only the leader writes the store. */
export class NotLeaderError extends VnetError {
  constructor(what: string) {
    super('VNET_ERR_NOT_LEADER', `${what}: this controller is not the leader; only the leader writes the store`);
  }
}

/** A write refused by etcd because the leadership it was fenced by is gone (a deposed leader's late write). */
export class FencedWriteError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_FENCED_WRITE', message);
  }
}

/** A site an image is published at that has no chunk server the controller can reach (docs/images.md, "Publish"). */
export class ImageSiteError extends VnetError {
  readonly site: string;
  constructor(site: string, why: string) {
    super('VNET_ERR_IMAGE_SITE', `site ${JSON.stringify(site)} ${why}`);
    this.site = site;
  }
}

/** A version published before every one of its chunks is at its origin site (nothing is written). */
export class ImageIncompleteError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_IMAGE_INCOMPLETE', message);
  }
}

/**
 * A version number the image had before, since deleted, published again
 * (docs/images.md, "Version numbers"): a number names one content forever,
 * so it is refused whatever the content; the next never-used number is named.
 */
export class ImageVersionDeletedError extends VnetError {
  readonly imageId: string;
  readonly version: number;
  readonly deletedMs: number;
  readonly nextVersion: number;
  constructor(imageId: string, version: number, deletedMs: number, nextVersion: number) {
    super('VNET_ERR_IMAGE_VERSION_DELETED', `image ${imageId} version ${version} was published before and deleted at ${new Date(deletedMs).toISOString()}: a version number is never reused; publish as version ${nextVersion}, the next never used`);
    this.imageId = imageId;
    this.version = version;
    this.deletedMs = deletedMs;
    this.nextVersion = nextVersion;
  }
}

/** An image version (or image) to delete that VMs are configured or running on (nothing is deleted). */
export class ImageInUseError extends VnetError {
  readonly vms: readonly string[];
  constructor(imageId: string, version: number | undefined, vms: readonly string[]) {
    super('VNET_ERR_IMAGE_IN_USE', `image ${imageId}${version === undefined ? '' : ` version ${version}`} is in use by ${vms.length === 1 ? 'VM' : 'VMs'} ${vms.join(', ')}: move them to another version (guest.image.version) or remove them first`);
    this.vms = vms;
  }
}
