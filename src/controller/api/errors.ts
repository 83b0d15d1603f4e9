import { VnetError } from '../../common/errors.ts';

/**
 * Errors of the operator API. Each maps to one HTTP status and is sent as
 * `{ "error": { "code": "...", "message": "..." } }`. Errors thrown by the
 * model are mapped by their code (see `statusForCode`). A resource named in
 * the path that does not exist is the controller's `NotFoundError`
 * (../errors.ts), the same failure whether the API or the model finds it.
 */

/** No token, or a token the controller does not know. */
export class ApiAuthError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_API_UNAUTHORIZED', message);
  }
}

/** A valid token whose scope does not allow the request (a `read` token asking for a change). */
export class ApiForbiddenError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_API_FORBIDDEN', message);
  }
}

/** A request body or query parameter that is not valid; names the field. */
export class ApiInvalidRequestError extends VnetError {
  readonly field: string | undefined;
  constructor(message: string, field?: string, options?: { cause?: unknown }) {
    super('VNET_ERR_API_INVALID_REQUEST', message, options);
    this.field = field;
  }
}

/** A request body longer than the limit. */
export class ApiBodyTooLargeError extends VnetError {
  readonly max: number;
  constructor(max: number) {
    super('VNET_ERR_API_BODY_TOO_LARGE', `request body exceeds the limit of ${max} bytes`);
    this.max = max;
  }
}

/** A path the API does not serve. */
export class ApiRouteNotFoundError extends VnetError {
  constructor(method: string, path: string) {
    super('VNET_ERR_API_NO_ROUTE', `no route for ${method} ${path}`);
  }
}

/** A path that exists with another method. */
export class ApiMethodNotAllowedError extends VnetError {
  readonly allowed: readonly string[];
  constructor(method: string, path: string, allowed: readonly string[]) {
    super('VNET_ERR_API_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path} (allowed: ${allowed.join(', ')})`);
    this.allowed = allowed;
  }
}

/** An operation this controller does not implement. */
export class ApiNotSupportedError extends VnetError {
  constructor(what: string) {
    super('VNET_ERR_NOT_SUPPORTED', `${what} is not supported by this controller`);
  }
}

/**
 * A change sent to a controller replica that does not lead (docs/ha.md):
 * 307 to the same path on the leader's API when the election key names it
 * (`location`), else 503 naming the leader if known.
 */
export class ApiNotLeaderError extends VnetError {
  readonly location: string | undefined;
  constructor(replica: string, leader: { name: string; api?: string | undefined } | undefined, target: string) {
    super('VNET_ERR_NOT_LEADER', leader === undefined
      ? `controller replica ${replica} does not lead and no leader is elected now: changes are refused; try again shortly`
      : `controller replica ${replica} does not lead; send changes to the leader, ${leader.name}${leader.api !== undefined ? ` (${leader.api})` : ' (its API address is not known)'}`);
    this.location = leader?.api === undefined ? undefined : `${leader.api.replace(/\/+$/, '')}${target}`;
  }
}

/** A follower cannot answer a read only the leader can (api/leader-reads.ts): no leader, or it did not answer. */
export class ApiLeaderUnreachableError extends VnetError {
  constructor(replica: string, why: string) {
    super('VNET_ERR_LEADER_UNREACHABLE', `controller replica ${replica} does not lead and cannot answer this read (link rates, traffic matrix and placement proposals are the leader's): ${why}; try again shortly or ask the leader`);
  }
}

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  VNET_ERR_NOT_LEADER: 503,
  VNET_ERR_LEADER_UNREACHABLE: 503,
  VNET_ERR_API_UNAUTHORIZED: 401,
  VNET_ERR_API_FORBIDDEN: 403,
  VNET_ERR_API_INVALID_REQUEST: 400,
  VNET_ERR_INVALID_ARGUMENT: 400,
  VNET_ERR_API_BODY_TOO_LARGE: 413,
  VNET_ERR_API_NO_ROUTE: 404,
  VNET_ERR_API_METHOD_NOT_ALLOWED: 405,
  VNET_ERR_NOT_FOUND: 404,
  VNET_ERR_UNKNOWN_HOST: 404,
  VNET_ERR_CONFLICT: 409,
  VNET_ERR_NOT_SUPPORTED: 501,
  VNET_ERR_MIGRATION_REQUEST: 400,
  VNET_ERR_MIGRATION_UNKNOWN_VM: 404,
  VNET_ERR_MIGRATION_UNKNOWN_HOST: 404,
  VNET_ERR_MIGRATION_NOT_FOUND: 404,
  VNET_ERR_MIGRATION_SAME_HOST: 409,
  VNET_ERR_MIGRATION_IN_PROGRESS: 409,
  VNET_ERR_MIGRATION_HOST_DOWN: 409,
  VNET_ERR_MIGRATION_COMMITTED: 409,
  VNET_ERR_MIGRATION_FINISHED: 409,
  VNET_ERR_IMAGE_MANIFEST: 400,
  VNET_ERR_IMAGE_CHUNK_INTEGRITY: 400,
  VNET_ERR_IMAGE_INCOMPLETE: 409,
  VNET_ERR_IMAGE_IN_USE: 409,
  VNET_ERR_IMAGE_VERSION_DELETED: 409,
  VNET_ERR_IMAGE_SITE: 400,
  VNET_ERR_IMAGE_PEER: 502,
};

/** A request for a path that no static file answers (the router checks `has` first: a bug if reached). */
export class ApiStaticFileError extends VnetError {
  constructor(path: string) {
    super('VNET_ERR_API_STATIC_FILE', `no static file ${path}`);
  }
}

/** The HTTP status for an error code; 500 for anything not an expected client error. */
export function statusForCode(code: string | undefined): number {
  return (code !== undefined ? STATUS_BY_CODE[code] : undefined) ?? 500;
}

/** The operator web page's files are not where the controller was installed (a broken install). */
export class WebPageMissingError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_WEB_PAGE_MISSING', message);
  }
}
