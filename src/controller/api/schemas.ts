import { z } from 'zod';
import { EVENT_TYPES, type EventType } from '../api-events.ts';
import { ApiInvalidRequestError } from './errors.ts';

/**
 * Validation of what operators send: request bodies and query strings.
 * Strict (unknown keys rejected); the first problem becomes a 400 naming the field.
 */

export const hostIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a host id is 1-63 letters, digits, ".", "_" or "-"');
export const macSchema = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, 'a MAC address is six hex pairs separated by ":"')
  .transform((s) => s.toLowerCase());

export const addLinkBodySchema = z.strictObject({
  a: hostIdSchema,
  b: hostIdSchema,
  reason: z.string().max(200, 'a reason is at most 200 characters').optional(),
});
export type AddLinkBody = z.infer<typeof addLinkBodySchema>;

export const joinTokenBodySchema = z.strictObject({
  /** The one host that may use it; required unless anyHost is true. */
  host: hostIdSchema.optional(),
  anyHost: z.boolean().optional(),
  /** Lifetime in seconds; the controller's default (one hour) if absent. */
  ttlSeconds: z.number().int().min(1).max(30 * 24 * 3600, 'ttlSeconds is at most 30 days').optional(),
  singleUse: z.boolean().optional(),
});

/** Ids of API and join tokens: the first 12 hex digits of the token's hash. */
export const tokenIdSchema = z.string().regex(/^[0-9a-f]{12}$/, 'a token id is 12 lower-case hex digits');

export const apiTokenBodySchema = z.strictObject({
  /** Who or what the token is for (audits name it: operator:<label>). */
  label: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$/, 'a label is 1-64 letters, digits, spaces, ".", "_", "@" or "-"'),
  scope: z.enum(['read', 'operator'], 'scope must be read or operator'),
});

export const startMigrationBodySchema = z.strictObject({
  /** The VM by MAC or by name. */
  vm: z.string().min(1, 'name the VM by MAC or by name').max(64, 'a VM is named in at most 64 characters'),
  to: hostIdSchema,
  rule: z.enum(['smart-stop', 'xen', 'qemu', 'time-bound'], 'rule must be one of smart-stop, xen, qemu, time-bound').optional(),
  /** For time-bound: the bound on the memory phase, seconds. */
  deadlineS: z.number().positive('deadlineS must be positive').max(86_400, 'deadlineS is at most 86400').optional(),
});

const uintParam = (max: number): z.ZodType<number, string> =>
  z
    .string()
    .regex(/^\d{1,15}$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(0).max(max)) as unknown as z.ZodType<number, string>;

const eventTypeSet = new Set<string>(EVENT_TYPES);

export const eventsQuerySchema = z.strictObject({
  since: uintParam(Number.MAX_SAFE_INTEGER).optional(),
  limit: uintParam(1000).optional(),
  types: z
    .string()
    .transform((s) => s.split(',').filter((t) => t !== ''))
    .refine((list) => list.every((t) => eventTypeSet.has(t)), { message: `each type must be one of ${EVENT_TYPES.join(', ')}` })
    .transform((list) => list as EventType[])
    .optional(),
});

export const decisionsQuerySchema = z.strictObject({
  limit: uintParam(1000).optional(),
});

export const emptyQuerySchema = z.strictObject({});

export const streamQuerySchema = z.strictObject({
  since: uintParam(Number.MAX_SAFE_INTEGER).optional(),
  token: z.string().max(256).optional(),
});

/** Parse `value` with `schema`; the first issue becomes an ApiInvalidRequestError naming its field. */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'path'): z.output<S> {
  if (where === 'body' && value === undefined) throw new ApiInvalidRequestError('a JSON request body is required', 'body');
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field =
    issue.code === 'unrecognized_keys' ? issue.keys.map(String).join(', ') : issue.path.length > 0 ? issue.path.map(String).join('.') : where;
  const message = issue.code === 'unrecognized_keys' ? `unknown ${where === 'body' ? 'field' : 'query parameter'}` : issue.message;
  const label = where === 'body' ? 'field' : where === 'query' ? 'query parameter' : 'path parameter';
  return raise(new ApiInvalidRequestError(`${label} ${field}: ${message}`, field));
}

function raise(err: Error): never {
  throw err;
}

/** A query string as a plain object; a repeated key is an error (one value each). */
export function queryObject(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) {
    if (Object.hasOwn(out, k)) throw new ApiInvalidRequestError(`query parameter ${k} given more than once`, k);
    out[k] = v;
  }
  return out;
}
