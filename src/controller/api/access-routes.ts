import type { AccessCommands, ApiTokenView, CreatedApiTokenView } from '../access-model.ts';
import { NotFoundError } from '../errors.ts';
import { requireOperator } from './auth.ts';
import { ApiNotSupportedError } from './errors.ts';
import type { Router } from './router.ts';
import { apiTokenBodySchema, hostIdSchema, joinTokenBodySchema, parseRequest, tokenIdSchema } from './schemas.ts';
import { createApiToken, type ApiTokenRecord, type TokenStore } from './token-store.ts';
import { API_PREFIX, noQuery, ok, pathParam, type RequestContext, type RouteHandler } from './v1-routes.ts';

/**
 * Access routes of the operator API, every one for tokens with the operator
 * scope (listing included): API tokens (over the API's TokenStore), join
 * tokens and host credentials (over the controller's AccessCommands; 501
 * where the controller has none). Revoking an API token closes the event
 * streams opened with it (`onApiTokenRevoked`); revoking a host's credential
 * closes its control session (the controller does that).
 */

export interface AccessRouteComponents {
  tokens: TokenStore;
  access: AccessCommands | undefined;
  wallClock: () => number;
  /** An API token was revoked: end what it still holds open. */
  onApiTokenRevoked(tokenId: string): void;
}

export function apiTokenView(r: ApiTokenRecord): ApiTokenView {
  return { id: r.id, label: r.label, scope: r.scope, createdAt: r.createdAt, revokedAt: r.revokedAt ?? null };
}

export function addAccessRoutes(r: Router<RouteHandler>, c: AccessRouteComponents): void {
  const p = API_PREFIX;
  const operator = (handler: RouteHandler, what: string): RouteHandler => (ctx) => {
    requireOperator(ctx.principal, what);
    return handler(ctx);
  };
  const access = (): AccessCommands => {
    if (c.access === undefined) throw new ApiNotSupportedError('managing join tokens and host credentials');
    return c.access;
  };
  const audit = (ctx: RequestContext, action: string, target: string, detail: Record<string, unknown>): void =>
    c.access?.recordOperatorAction(ctx.principal.actor, action, target, detail);

  r.add('GET', `${p}/tokens`, operator((ctx) => {
    noQuery(ctx);
    return ok({ tokens: c.tokens.list().map(apiTokenView) });
  }, 'listing API tokens'));
  r.add('POST', `${p}/tokens`, operator(async (ctx) => {
    const body = parseRequest(apiTokenBodySchema, await ctx.body(), 'body');
    const { token, record } = createApiToken(c.tokens, body.label, c.wallClock(), body.scope);
    audit(ctx, 'create-api-token', record.id, { label: record.label, scope: record.scope });
    const created: CreatedApiTokenView = { token, ...apiTokenView(record) };
    return { status: 201, body: created };
  }, 'creating an API token'));
  r.add('DELETE', `${p}/tokens/:id`, operator((ctx) => {
    const id = pathParam(ctx, 'id', tokenIdSchema);
    const record = c.tokens.list().find((t) => t.id === id);
    if (record === undefined || !c.tokens.revoke(id, c.wallClock())) throw new NotFoundError(`API token ${JSON.stringify(id)} (or it was revoked already)`);
    c.onApiTokenRevoked(id);
    audit(ctx, 'revoke-api-token', id, { label: record.label });
    return ok({ revoked: apiTokenView(c.tokens.list().find((t) => t.id === id) ?? record) });
  }, 'revoking an API token'));

  r.add('GET', `${p}/join-tokens`, operator((ctx) => {
    noQuery(ctx);
    return ok({ joinTokens: access().listJoinTokens() });
  }, 'listing join tokens'));
  r.add('POST', `${p}/join-tokens`, operator(async (ctx) => {
    const body = parseRequest(joinTokenBodySchema, await ctx.body(), 'body');
    const created = await access().createJoinToken(
      { host: body.host, anyHost: body.anyHost, ttlMs: body.ttlSeconds === undefined ? undefined : body.ttlSeconds * 1000, singleUse: body.singleUse },
      ctx.principal.actor,
    );
    return { status: 201, body: created };
  }, 'creating a join token'));
  r.add('DELETE', `${p}/join-tokens/:id`, operator(async (ctx) => {
    const id = pathParam(ctx, 'id', tokenIdSchema);
    return ok({ revoked: await access().revokeJoinToken(id, ctx.principal.actor) });
  }, 'revoking a join token'));

  r.add('GET', `${p}/credentials`, operator((ctx) => {
    noQuery(ctx);
    return ok({ credentials: access().listHostIdentities() });
  }, 'listing host credentials'));
  r.add('DELETE', `${p}/credentials/:host`, operator(async (ctx) => {
    const host = pathParam(ctx, 'host', hostIdSchema);
    return ok({ revoked: await access().revokeHostIdentity(host, ctx.principal.actor) });
  }, 'revoking a host credential'));
}
