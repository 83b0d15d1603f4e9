/**
 * The first bytes of a migration channel, after the TLS handshake: one line
 * from the source naming the migration and which of its channels this is,
 * one line back from the destination saying whether it takes it.
 *
 *   source → destination   "vnet-migrate/1 <id> <index> <count>\n"
 *   destination → source   "ok\n"  |  "no <VNET_ERR_CODE>\n"
 *
 * `count` is 1, or 2 for the time-bound rule's two channels and for a QEMU
 * VM (its stream, then the RAM digest line: qemu-ram-line.ts); `index` is
 * 0..count-1. Migration records (docs/migration-protocol.md) follow only
 * after "ok". Both lines are at most MAX_LINE bytes of ASCII; the reader
 * takes bytes in any chunking, checks the limit before buffering more, and
 * hands back what followed the line. Bad input is a ChannelHelloError,
 * never an exception.
 */
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { ChannelHelloError } from './errors.ts';

export const CHANNEL_HELLO_PREFIX = 'vnet-migrate/1';
export const MAX_LINE = 128;
export const MAX_CHANNELS = 2;

const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const CODE = /^VNET_ERR_[A-Z0-9_]{1,100}$/;

export interface ChannelHello {
  readonly id: string;
  readonly index: number;
  readonly count: number;
}

export type ChannelReply = { readonly ok: true } | { readonly ok: false; readonly code: string };

export function encodeChannelHello(h: ChannelHello): Buffer {
  return Buffer.from(`${CHANNEL_HELLO_PREFIX} ${h.id} ${h.index} ${h.count}\n`, 'latin1');
}

export function encodeChannelReply(r: ChannelReply): Buffer {
  return Buffer.from(r.ok ? 'ok\n' : `no ${CODE.test(r.code) ? r.code : 'VNET_ERR_HOST_CHANNEL_REFUSED'}\n`, 'latin1');
}

export function parseChannelHello(line: string): ChannelHello | ChannelHelloError {
  const parts = line.split(' ');
  if (parts.length !== 4 || parts[0] !== CHANNEL_HELLO_PREFIX) return new ChannelHelloError('not a vnet migration channel hello');
  const [, id, index, count] = parts as [string, string, string, string];
  if (!ID.test(id)) return new ChannelHelloError('bad migration id');
  if (!/^[0-9]$/.test(index) || !/^[0-9]$/.test(count)) return new ChannelHelloError('bad channel index or count');
  const i = Number(index);
  const n = Number(count);
  if (n < 1 || n > MAX_CHANNELS || i >= n) return new ChannelHelloError(`channel ${i} of ${n}: a migration has 1 or ${MAX_CHANNELS} channels`);
  return { id, index: i, count: n };
}

export function parseChannelReply(line: string): ChannelReply | ChannelHelloError {
  if (line === 'ok') return { ok: true };
  const m = /^no (\S+)$/.exec(line);
  if (m !== null && CODE.test(m[1]!)) return { ok: false, code: m[1]! };
  return new ChannelHelloError('not a migration channel reply');
}

/**
 * The JSON after a line's `prefix`, checked by `schema`: its value, or why
 * not as text naming `what` ("<what> is not JSON", "<what>: field: issue").
 * The caller checked the prefix and wraps the text in its own error.
 */
export function parseJsonAfter<S extends z.ZodType>(line: string, prefix: string, schema: S, what: string): z.output<S> | string {
  let json: unknown;
  try {
    json = JSON.parse(line.slice(prefix.length));
  } catch {
    return `${what} is not JSON`;
  }
  const r = schema.safeParse(json);
  if (!r.success) return `${what}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
  return r.data;
}

export type LineResult =
  | { readonly state: 'more' }
  | { readonly state: 'line'; readonly line: string; readonly rest: Buffer }
  | { readonly state: 'error'; readonly error: ChannelHelloError };

/** Reads one line of at most `maxBytes` (newline excluded), in any chunking. */
export class LineReader {
  readonly #max: number;
  #parts: Buffer[] = [];
  #length = 0;
  #done = false;

  constructor(opts: { maxBytes?: number } = {}) {
    this.#max = opts.maxBytes ?? MAX_LINE;
  }

  push(chunk: Buffer): LineResult {
    if (this.#done) return { state: 'error', error: new ChannelHelloError('the line was already read') };
    const nl = chunk.indexOf(0x0a);
    const take = nl === -1 ? chunk.length : nl;
    if (this.#length + take > this.#max) {
      this.#done = true;
      return { state: 'error', error: new ChannelHelloError(`line longer than ${this.#max} bytes`) };
    }
    this.#parts.push(chunk.subarray(0, take));
    this.#length += take;
    if (nl === -1) return { state: 'more' };
    this.#done = true;
    const bytes = Buffer.concat(this.#parts);
    this.#parts = [];
    for (const b of bytes) {
      if (b < 0x20 || b > 0x7e) return { state: 'error', error: new ChannelHelloError('line is not printable ASCII') };
    }
    return { state: 'line', line: bytes.toString('latin1'), rest: chunk.subarray(nl + 1) };
  }
}

export type ChannelLine =
  | { readonly state: 'line'; readonly line: string; readonly rest: Buffer }
  | { readonly state: 'error'; readonly error: ChannelHelloError }
  | { readonly state: 'closed' };

/**
 * One line off a channel (at most `maxBytes`, in any chunking), and the
 * bytes after it; `closed` when the channel closes or `signal` aborts
 * first (or its peer ends it). The channel is paused again once the line is read, so no byte
 * after it is lost.
 */
export function readChannelLine(channel: Duplex, signal: AbortSignal, maxBytes: number): Promise<ChannelLine> {
  return new Promise((resolve) => {
    const reader = new LineReader({ maxBytes });
    const cleanup = (): void => {
      channel.off('data', onData);
      channel.off('close', onClose);
      channel.off('end', onClose);
      signal.removeEventListener('abort', onClose);
      channel.pause();
    };
    const onClose = (): void => { cleanup(); resolve({ state: 'closed' }); };
    const onData = (chunk: Buffer): void => {
      const r = reader.push(chunk);
      if (r.state === 'more') return;
      cleanup();
      resolve(r.state === 'error' ? r : { state: 'line', line: r.line, rest: Buffer.from(r.rest) });
    };
    if (signal.aborted) { resolve({ state: 'closed' }); return; }
    channel.on('data', onData);
    channel.once('close', onClose);
    channel.once('end', onClose);
    signal.addEventListener('abort', onClose, { once: true });
    channel.resume();
  });
}
