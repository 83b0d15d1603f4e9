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

/** The daemon could not prove who it is: no valid certificate, and no valid join token or host credential. */
export class ControlAuthError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_CONTROL_AUTH', message);
  }
}

/** A join token that is unknown, expired, already used or bound to another host. */
export class JoinTokenError extends VnetError {
  readonly reason: 'unknown' | 'expired' | 'used' | 'wrong-host';
  constructor(reason: 'unknown' | 'expired' | 'used' | 'wrong-host', message: string) {
    super('VNET_ERR_JOIN_TOKEN', message);
    this.reason = reason;
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

