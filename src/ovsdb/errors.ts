/**
 * The OVSDB client's errors. Like src/openflow, this module is self-contained
 * (node built-ins only) and has its own base class; every failure has a
 * stable `code` (VNET_ERR_OVSDB_…).
 */
export class OvsdbError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bytes from the server that are not a JSON-RPC message within the limits; the connection is closed. */
export class OvsdbProtocolError extends OvsdbError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_OVSDB_PROTOCOL', message, options);
  }
}

/** The connection could not be made or was lost; pending requests fail with it. */
export class OvsdbConnectionError extends OvsdbError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_OVSDB_CONNECTION', message, options);
  }
}

/** A JSON-RPC request answered with an error (RFC 7047 §4.1: `error` set in the response). */
export class OvsdbRpcError extends OvsdbError {
  readonly rpcError: unknown;
  constructor(method: string, rpcError: unknown) {
    super('VNET_ERR_OVSDB_RPC', `OVSDB ${method} failed: ${JSON.stringify(rpcError)}`);
    this.rpcError = rpcError;
  }
}

/** A transaction whose operation failed (§5.2: an `error` object among the results); nothing of it was committed. */
export class OvsdbTransactionError extends OvsdbError {
  readonly operation: number;
  readonly error: string;
  readonly details: string | undefined;
  constructor(what: string, operation: number, error: string, details: string | undefined) {
    super('VNET_ERR_OVSDB_TRANSACTION', `${what}: operation ${operation} failed: ${error}${details ? ` (${details})` : ''}`);
    this.operation = operation;
    this.error = error;
    this.details = details;
  }
}

/** A request the caller made that cannot be right (a bridge that exists, a port that does not, a bad name or address). */
export class OvsdbRequestError extends OvsdbError {
  constructor(message: string) {
    super('VNET_ERR_OVSDB_REQUEST', message);
  }
}
