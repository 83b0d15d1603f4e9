import type { IncomingMessage } from 'node:http';
import { ApiAuthError, ApiForbiddenError } from './errors.ts';
import { verifyApiToken } from './token-store.ts';
import type { ApiTokenRecord, TokenStore } from './token-store.ts';
import type { ApiScope } from '../store/records.ts';

/**
 * Bearer-token authentication. HTTP requests carry `Authorization: Bearer
 * <token>`; the event-stream WebSocket may instead carry `?token=` because
 * browsers cannot set headers on a WebSocket. The actor recorded in audits is
 * "operator:<label of the token>". What a principal may do is its token's
 * scope: `read` (GET, HEAD and the event stream) or `operator` (everything).
 */

export interface Principal {
  tokenId: string;
  actor: string;
  scope: ApiScope;
}

const BEARER_RE = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The bearer token of a request, if it has a well-formed Authorization header. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  return BEARER_RE.exec(h)?.[1];
}

export function authenticate(tokens: TokenStore, token: string | undefined): Principal {
  if (token === undefined || token === '') {
    throw new ApiAuthError('missing API token: send "Authorization: Bearer <token>" (the controller printed the token at first start)');
  }
  const record: ApiTokenRecord | undefined = verifyApiToken(tokens, token);
  if (record === undefined) throw new ApiAuthError('the API token is not valid for this controller (unknown or revoked)');
  return { tokenId: record.id, actor: `operator:${record.label}`, scope: record.scope };
}

/** Throw ApiForbiddenError (403) unless the principal's token has the operator scope. */
export function requireOperator(principal: Principal, what: string): void {
  if (principal.scope !== 'operator') {
    throw new ApiForbiddenError(`${what} needs a token with the operator scope; token ${principal.tokenId} has the ${principal.scope} scope`);
  }
}
