import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LeaderRecord } from '../leader-record.ts';
import { ApiLeaderUnreachableError } from './errors.ts';
import { API_PREFIX } from './v1-routes.ts';

/**
 * The reads a controller replica that does not lead forwards to the
 * leader's API (docs/ha.md, "Followers serve the API's reads"): what only
 * the leader holds in memory — link rates (`links`, in `overview` too), the
 * smoothed traffic matrix (`matrix`) and the placement advisor's proposals
 * (`placement`, in `overview` too). Everything else a follower answers from
 * its replicated store.
 *
 * Why forwarded rather than a snapshot the leader writes to etcd: these
 * change every update period, so a snapshot would be a write to etcd every
 * second (its history kept until compaction, and the matrix grows with the
 * VMs: close to etcd's 1.5 MiB request limit at a few thousand), and it
 * would still be up to one period old when read. Forwarded, the answer is
 * the leader's own at that moment; it costs one more loopback-or-LAN hop, and
 * only when someone asks a follower.
 *
 * The request goes to the API address in the election key with the same
 * path, query and `Authorization` (the same tokens authenticate on every
 * replica), marked `x-vnet-forwarded: 1` — a replica never forwards a
 * request so marked (a leader that has just lost its term answers from its
 * own store instead of sending it back). The answer (status and JSON body,
 * at most `maxBytes`) is relayed as is, with `x-vnet-served-by: <leader>`.
 * No leader, no known API address, or no answer within `timeoutMs`: 503
 * `VNET_ERR_LEADER_UNREACHABLE`, saying which.
 */

export const FORWARDED_HEADER = 'x-vnet-forwarded';
export const SERVED_BY_HEADER = 'x-vnet-served-by';

/** Route patterns (router.ts) a follower forwards. */
export const LEADER_ONLY_READS: ReadonlySet<string> = new Set([
  `${API_PREFIX}/links`, `${API_PREFIX}/links/:a/:b`, `${API_PREFIX}/matrix`, `${API_PREFIX}/placement`, `${API_PREFIX}/overview`,
]);

export interface ForwardedRead {
  status: number;
  contentType: string;
  body: Buffer;
  leader: string;
}

export interface ForwardInit {
  /** This replica's name, for errors. */
  replica: string;
  timeoutMs?: number;
  /** Largest answer relayed (default 64 MiB). */
  maxBytes?: number;
}

/** GET `target` (path and query) on the leader's API, with the caller's `authorization`. */
export async function forwardRead(leader: LeaderRecord | undefined, target: string, authorization: string | undefined, init: ForwardInit): Promise<ForwardedRead> {
  if (leader === undefined) throw new ApiLeaderUnreachableError(init.replica, 'no leader is elected now');
  if (leader.api === undefined) throw new ApiLeaderUnreachableError(init.replica, `the leader, ${leader.name}, has no known API address`);
  const url = `${leader.api.replace(/\/+$/, '')}${target}`;
  const maxBytes = init.maxBytes ?? 64 * 1024 * 1024;
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, {
      method: 'GET', timeout: init.timeoutMs ?? 5000,
      headers: { [FORWARDED_HEADER]: '1', accept: 'application/json', ...(authorization !== undefined ? { authorization } : {}) },
    }, resolve);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${init.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end();
  }).catch((err: unknown) => {
    throw new ApiLeaderUnreachableError(init.replica, `the leader, ${leader.name} (${leader.api}), did not answer: ${(err as Error).message}`);
  });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        res.destroy();
        throw new Error(`its answer is larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw new ApiLeaderUnreachableError(init.replica, `the leader, ${leader.name} (${leader.api}), did not answer whole: ${(err as Error).message}`);
  }
  return { status: res.statusCode ?? 502, contentType: res.headers['content-type'] ?? 'application/json; charset=utf-8', body: Buffer.concat(chunks), leader: leader.name };
}
