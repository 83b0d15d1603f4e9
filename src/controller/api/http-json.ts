import type { IncomingMessage, ServerResponse } from 'node:http';
import { VnetError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { ApiBodyTooLargeError, ApiInvalidRequestError, ApiMethodNotAllowedError, ApiNotLeaderError, statusForCode } from './errors.ts';

/**
 * JSON in and out of the HTTP API: bounded body reading, responses, and the
 * one error shape `{ error: { code, message, field? } }`.
 */

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** Read and parse a JSON body of at most `maxBytes`; an empty body reads as undefined. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers['content-type'];
  const body = await readBounded(req, maxBytes);
  if (body.length === 0) return undefined;
  if (type !== undefined && !/^application\/json\b/i.test(type)) {
    throw new ApiInvalidRequestError(`request body must be application/json (got ${JSON.stringify(type.slice(0, 80))})`, 'content-type');
  }
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new ApiInvalidRequestError(`request body is not valid JSON: ${(err as Error).message}`, undefined, { cause: err });
  }
}

/** Read an `application/octet-stream` body of at most `maxBytes`. */
export async function readRawBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  const type = req.headers['content-type'];
  if (type === undefined || !/^application\/octet-stream\b/i.test(type)) {
    throw new ApiInvalidRequestError(`request body must be application/octet-stream (got ${JSON.stringify((type ?? 'none').slice(0, 80))})`, 'content-type');
  }
  const body = await readBounded(req, maxBytes);
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
}

async function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw new ApiBodyTooLargeError(maxBytes);
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      length += buf.length;
      if (length > maxBytes) throw new ApiBodyTooLargeError(maxBytes);
      chunks.push(buf);
    }
  } catch (err) {
    if (err instanceof ApiBodyTooLargeError) throw err;
    // The client went away (or broke the framing) before the body was whole: its fault, not ours.
    throw new ApiInvalidRequestError(`request body could not be read: ${(err as Error).message}`, undefined, { cause: err });
  }
  return Buffer.concat(chunks, length);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** Turn any thrown value into a JSON error response. Unexpected errors are logged and answered 500 without their details. */
export function sendError(res: ServerResponse, err: unknown, logger: Logger): number {
  let status = 500;
  let body: ErrorBody = { error: { code: 'VNET_ERR_INTERNAL', message: 'internal error (see the controller log)' } };
  if (err instanceof VnetError) {
    status = statusForCode(err.code);
    if (status !== 500) {
      body = { error: { code: err.code, message: err.message } };
      if (err instanceof ApiInvalidRequestError && err.field !== undefined) body.error.field = err.field;
    }
  }
  if (status === 500) logger.error({ err }, 'API request failed');
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  if (err instanceof ApiMethodNotAllowedError) res.setHeader('allow', err.allowed.join(', '));
  if (err instanceof ApiNotLeaderError && err.location !== undefined) {
    status = 307;
    res.setHeader('location', err.location);
  }
  // A body we stopped reading: close the connection rather than drain it.
  if (err instanceof ApiBodyTooLargeError) res.setHeader('connection', 'close');
  sendJson(res, status, body);
  return status;
}
