import { z } from 'zod';
import type { ControllerModel } from '../api-model.ts';
import { ApiNotSupportedError } from './errors.ts';
import { NotFoundError } from '../errors.ts';
import { Router } from './router.ts';
import {
  addLinkBodySchema,
  decisionsQuerySchema,
  emptyQuerySchema,
  eventsQuerySchema,
  hostIdSchema,
  macSchema,
  parseRequest,
  queryObject,
  startMigrationBodySchema,
} from './schemas.ts';
import type { Principal } from './auth.ts';

/**
 * The operator API, version 1: each route reads the model (or calls a
 * command) and returns a status and a JSON body. Lists are wrapped in an
 * object (`{ hosts: [...] }`) so fields can be added later.
 */

export const API_PREFIX = '/api/v1';

export interface RequestContext {
  params: Record<string, string>;
  query: URLSearchParams;
  principal: Principal;
  /** Reads and parses the JSON body (bounded: the server's limit, or `maxBytes`). */
  body(maxBytes?: number): Promise<unknown>;
  /** Reads a raw `application/octet-stream` body of at most `maxBytes`. */
  bytes(maxBytes: number): Promise<Uint8Array>;
}

export interface RouteResult {
  status: number;
  body: unknown;
}

export type RouteHandler = (ctx: RequestContext) => RouteResult | Promise<RouteResult>;

export const ok = (body: unknown): RouteResult => ({ status: 200, body });

export function noQuery(ctx: RequestContext): void {
  parseRequest(emptyQuerySchema, queryObject(ctx.query), 'query');
}

function param(ctx: RequestContext, name: string): string {
  return ctx.params[name] ?? '';
}

/** A path parameter validated by `schema`; a 400 names the parameter. */
export function pathParam<T>(ctx: RequestContext, name: string, schema: z.ZodType<T, string>): T {
  const parsed = parseRequest(z.object({ [name]: schema }), { [name]: param(ctx, name) }, 'path');
  return parsed[name] as T;
}

/** `extra`: resources the API server adds when it has what they need (`status`: a replica's status provider). */
export function createV1Router(model: ControllerModel, extra: readonly string[] = []): Router<RouteHandler> {
  const r = new Router<RouteHandler>();
  const p = API_PREFIX;

  r.add('GET', p, () =>
    ok({
      version: 1,
      resources: ['overview', 'hosts', 'vms', 'links', 'matrix', 'topology', 'migrations', 'events', 'placement', 'decisions', 'whoami', ...extra, 'tokens', 'join-tokens', 'credentials'],
    }),
  );

  r.add('GET', `${p}/whoami`, (ctx) => ok({ actor: ctx.principal.actor, tokenId: ctx.principal.tokenId, scope: ctx.principal.scope }));

  /** Everything the web page draws, consistent with one event seq: resume the stream from `latestSeq`. */
  r.add('GET', `${p}/overview`, (ctx) => {
    noQuery(ctx);
    return ok({
      latestSeq: model.latestSeq(),
      hosts: model.listHosts(),
      vms: model.listVms(),
      links: model.listLinks(),
      topology: model.getTopology(),
      migrations: model.listMigrations(),
      placement: model.getPlacement(),
    });
  });

  r.add('GET', `${p}/hosts`, (ctx) => {
    noQuery(ctx);
    return ok({ hosts: model.listHosts() });
  });
  r.add('GET', `${p}/hosts/:id`, (ctx) => {
    const host = model.getHost(param(ctx, 'id'));
    if (host === undefined) throw new NotFoundError(`host ${JSON.stringify(param(ctx, 'id'))}`);
    return ok(host);
  });
  r.add('GET', `${p}/hosts/:id/rules`, (ctx) => {
    const rules = model.getRules(param(ctx, 'id'));
    if (rules === undefined) throw new NotFoundError(`host ${JSON.stringify(param(ctx, 'id'))}`);
    return ok(rules);
  });

  r.add('GET', `${p}/vms`, (ctx) => {
    noQuery(ctx);
    return ok({ vms: model.listVms() });
  });
  r.add('GET', `${p}/vms/:mac`, (ctx) => {
    const mac = pathParam(ctx, 'mac', macSchema);
    const vm = model.getVm(mac);
    if (vm === undefined) throw new NotFoundError(`VM ${mac}`);
    return ok(vm);
  });

  r.add('GET', `${p}/links`, (ctx) => {
    noQuery(ctx);
    return ok({ links: model.listLinks() });
  });
  r.add('GET', `${p}/links/:a/:b`, (ctx) => {
    const link = model.getLink(param(ctx, 'a'), param(ctx, 'b'));
    if (link === undefined) throw new NotFoundError(`link between ${JSON.stringify(param(ctx, 'a'))} and ${JSON.stringify(param(ctx, 'b'))}`);
    return ok(link);
  });
  r.add('POST', `${p}/links`, async (ctx) => {
    const body = parseRequest(addLinkBodySchema, await ctx.body(), 'body');
    const link = await model.addFastPathLink(body.a, body.b, body.reason ?? 'requested by operator', ctx.principal.actor);
    return { status: 201, body: link };
  });
  r.add('DELETE', `${p}/links/:a/:b`, async (ctx) => {
    const a = pathParam(ctx, 'a', hostIdSchema);
    const b = pathParam(ctx, 'b', hostIdSchema);
    await model.removeFastPathLink(a, b, ctx.principal.actor);
    return ok({ removed: { a, b } });
  });

  r.add('GET', `${p}/matrix`, (ctx) => {
    noQuery(ctx);
    return ok(model.getMatrix());
  });
  r.add('GET', `${p}/topology`, (ctx) => {
    noQuery(ctx);
    return ok(model.getTopology());
  });

  r.add('GET', `${p}/migrations`, (ctx) => {
    noQuery(ctx);
    return ok({ migrations: model.listMigrations() });
  });
  r.add('GET', `${p}/migrations/:id`, (ctx) => {
    const m = model.getMigration(param(ctx, 'id'));
    if (m === undefined) throw new NotFoundError(`migration ${JSON.stringify(param(ctx, 'id'))}`);
    return ok(m);
  });
  r.add('POST', `${p}/migrations`, async (ctx) => {
    const body = parseRequest(startMigrationBodySchema, await ctx.body(), 'body');
    if (model.startMigration === undefined) throw new ApiNotSupportedError('starting a migration through the API');
    const m = await model.startMigration(body.vm, body.to, ctx.principal.actor, { rule: body.rule, deadlineS: body.deadlineS });
    return { status: 202, body: m };
  });
  r.add('POST', `${p}/migrations/:id/cancel`, async (ctx) => {
    noQuery(ctx);
    if (model.cancelMigration === undefined) throw new ApiNotSupportedError('cancelling a migration through the API');
    const m = await model.cancelMigration(param(ctx, 'id'), ctx.principal.actor);
    return { status: 202, body: m };
  });

  r.add('GET', `${p}/events`, (ctx) => {
    const q = parseRequest(eventsQuerySchema, queryObject(ctx.query), 'query');
    return ok(
      model.listEvents({
        ...(q.since !== undefined ? { since: q.since } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
        ...(q.types !== undefined ? { types: q.types } : {}),
      }),
    );
  });

  r.add('GET', `${p}/placement`, (ctx) => {
    noQuery(ctx);
    return ok(model.getPlacement());
  });
  r.add('GET', `${p}/decisions`, (ctx) => {
    const q = parseRequest(decisionsQuerySchema, queryObject(ctx.query), 'query');
    return ok({ decisions: model.listDecisions(q.limit !== undefined ? { limit: q.limit } : {}) });
  });

  return r;
}
