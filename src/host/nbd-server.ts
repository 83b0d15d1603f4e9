/**
 * A VM's disk served over NBD on a Unix socket (docs/images.md, "The disk
 * over NBD"): QEMU's `-drive file=nbd:unix:PATH:exportname=NAME` (or
 * `qemu-io`, `qemu-img`, `nbd-client`) reads and writes the disk the
 * daemon holds for the VM, an ImageDisk copy-on-write over its image.
 *
 *   listen      a Unix socket only, owner-only (0600, made so before anyone
 *               can connect): whoever can open it owns the disk, so there is
 *               no authentication and never TCP; "" names the export too
 *   handshake   fixed newstyle (nbd-codec.ts): GO / INFO answer the export's
 *               size, flags and block sizes, EXPORT_NAME the same the old
 *               way, LIST names the export, ABORT ends; anything else is
 *               NBD_REP_ERR_UNSUP (no TLS, no structured replies: a
 *               client falls back to simple replies)
 *   requests    one at a time per connection, in order: READ, WRITE (to the
 *               VM's overlay), WRITE_ZEROES, FLUSH, DISC. A request past the
 *               export's end or longer than the largest block is answered
 *               EINVAL (a write's bytes are read and dropped); a read the
 *               image cannot serve (no replica answers) EIO
 *   flush       answered once every write received before it, on any
 *               connection, is in the overlay: the durability ImageDisk
 *               defines (a write is in the guest's disk once it resolves)
 *   bad bytes   a wrong magic, unknown client flags, an option or write past
 *               the limits: NbdProtocolError, logged, the connection closed;
 *               the server and its other connections go on
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { componentLogger, type Logger } from '../common/logger.ts';
import {
  CLIENT_FLAG, CMD, CMD_FLAG, DEFAULT_NBD_LIMITS, decodeGoData, decodeName, encodeExportNameReply, encodeGreeting, encodeInfoBlockSize,
  encodeInfoExport, encodeOptionReply, encodeServerEntry, encodeSimpleReply, ERRNO, INFO, NbdDecoder, type NbdClientMessage, type NbdDecoderLimits,
  OPT, REP, TRANSMISSION_FLAG,
} from './nbd-codec.ts';
import { NbdServerError } from './errors.ts';
import type { ImageDisk } from './image-disk.ts';

/** What the server serves: an ImageDisk (`imageExport`), or any disk with these operations. */
export interface NbdExport {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  write(offset: number, bytes: Uint8Array, signal?: AbortSignal): Promise<void>;
}

export interface NbdServerInit extends Partial<NbdDecoderLimits> {
  readonly path: string;
  readonly export: NbdExport;
  /** Connections at once (default 16); one more is closed at once. */
  readonly maxConnections?: number;
}

const FLAGS = TRANSMISSION_FLAG.hasFlags | TRANSMISSION_FLAG.sendFlush | TRANSMISSION_FLAG.sendFua | TRANSMISSION_FLAG.sendWriteZeroes;
const MIN_BLOCK = 1;
const PREFERRED_BLOCK = 4096;
const ZEROES_STEP = 1 << 20;

export class NbdServer {
  readonly path: string;
  readonly #server: net.Server;
  readonly #export: NbdExport;
  readonly #limits: NbdDecoderLimits;
  readonly #maxConnections: number;
  readonly #log: Logger;
  readonly #sockets = new Set<net.Socket>();
  readonly #writes = new Set<Promise<void>>();
  readonly #abort = new AbortController();

  private constructor(logger: Logger, init: NbdServerInit, server: net.Server) {
    this.path = init.path;
    this.#server = server;
    this.#export = init.export;
    this.#limits = { maxOptionBytes: init.maxOptionBytes ?? DEFAULT_NBD_LIMITS.maxOptionBytes, maxPayloadBytes: init.maxPayloadBytes ?? DEFAULT_NBD_LIMITS.maxPayloadBytes };
    this.#maxConnections = init.maxConnections ?? 16;
    this.#log = componentLogger(logger, 'nbd-server', { export: init.export.name });
    server.on('connection', (s) => this.#accept(s));
  }

  /** Listen on `init.path` (a stale socket there is replaced; anything else is refused). Throws NbdServerError. */
  static async listen(components: { logger: Logger }, init: NbdServerInit): Promise<NbdServer> {
    clearSocketPath(init.path);
    const server = net.createServer({ allowHalfOpen: false });
    const nbd = new NbdServer(components.logger, init, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new NbdServerError(`cannot listen on ${init.path}: ${err.message}`, { cause: err })));
      // Owner-only from the moment the socket exists (then checked).
      const mask = process.umask(0o177);
      try {
        server.listen(init.path, () => resolve());
      } finally {
        process.umask(mask);
      }
    });
    try {
      chmodSync(init.path, 0o600);
    } catch (err) {
      await nbd.close();
      throw new NbdServerError(`cannot restrict ${init.path} to its owner: ${(err as Error).message}`, { cause: err });
    }
    server.on('error', (err) => nbd.#log.error({ detail: err.message }, 'the NBD listener failed'));
    nbd.#log.info({ path: init.path, size: init.export.size }, 'serving the VM\'s disk over NBD');
    return nbd;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /** Stop listening, close every connection (requests in flight are abandoned), remove the socket. */
  async close(): Promise<void> {
    this.#abort.abort();
    for (const s of this.#sockets) s.destroy();
    // Closing the listener removes its socket file there and then (libuv), not
    // later: a server listening on the same path next (a reload) keeps its own.
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: net.Socket): void {
    if (this.#sockets.size >= this.#maxConnections) {
      this.#log.warn({ limit: this.#maxConnections }, 'NBD connection refused: too many at once');
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', (err) => this.#log.debug({ detail: err.message }, 'NBD connection error'));
    socket.write(encodeGreeting());
    const conn = new Connection(this, socket, new NbdDecoder(this.#limits));
    socket.on('data', (chunk: Buffer) => conn.received(chunk));
  }

  // ---- what a connection asks of the server ----------------------------------------

  /** @internal */ get exportInfo(): NbdExport { return this.#export; }
  /** @internal */ get maxPayload(): number { return this.#limits.maxPayloadBytes; }
  /** @internal */ get signal(): AbortSignal { return this.#abort.signal; }
  /** @internal */ get log(): Logger { return this.#log; }

  /** @internal A write, counted until it is in the overlay (FLUSH waits for it). */
  track(p: Promise<void>): Promise<void> {
    const t = p.finally(() => this.#writes.delete(t));
    this.#writes.add(t);
    return t;
  }

  /** @internal Resolves once every write received so far is done. */
  async flushed(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }
}

/** One client: decodes its bytes, answers its options, then serves its requests one at a time. */
class Connection {
  readonly #server: NbdServer;
  readonly #socket: net.Socket;
  readonly #decoder: NbdDecoder;
  #noZeroes = false;
  #busy = false;

  constructor(server: NbdServer, socket: net.Socket, decoder: NbdDecoder) {
    this.#server = server;
    this.#socket = socket;
    this.#decoder = decoder;
  }

  received(chunk: Uint8Array): void {
    this.#decoder.push(chunk);
    if (!this.#busy) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    this.#socket.pause();
    try {
      for (let m = this.#decoder.next(); m !== undefined && !this.#socket.destroyed; m = this.#decoder.next()) {
        if (!(await this.#handle(m))) { this.#socket.end(); return; }
        // A client that does not read its replies is not answered further until it does.
        if (this.#socket.writableNeedDrain) await new Promise((resolve) => this.#socket.once('drain', resolve).once('close', resolve));
      }
    } catch (err) {
      this.#server.log.error({ detail: (err as Error).message }, 'NBD connection failed');
      this.#socket.destroy();
      return;
    } finally {
      this.#busy = false;
    }
    this.#socket.resume();
  }

  /** Answer one message; false: the connection ends. */
  async #handle(m: NbdClientMessage): Promise<boolean> {
    switch (m.kind) {
      case 'error':
        this.#server.log.warn({ code: m.error.code, detail: m.error.message }, 'NBD client refused: connection closed');
        return false;
      case 'client-flags':
        this.#noZeroes = (m.flags & CLIENT_FLAG.noZeroes) !== 0;
        return true;
      case 'option':
        return this.#option(m.option, m.data);
      case 'request':
        return this.#request(m);
    }
  }

  #option(option: number, data: Uint8Array): boolean {
    const ex = this.#server.exportInfo;
    const reply = (type: number, body?: Uint8Array): void => { this.#socket.write(encodeOptionReply(option, type, body)); };
    switch (option) {
      case OPT.exportName: {
        const asked = decodeName(data);
        if (asked !== ex.name && asked !== '') {
          this.#server.log.info({ asked: asked ?? '(not UTF-8)' }, 'NBD client asked for an unknown export: connection closed');
          return false;
        }
        this.#socket.write(encodeExportNameReply(ex.size, FLAGS, this.#noZeroes));
        this.#decoder.startTransmission();
        return true;
      }
      case OPT.abort:
        reply(REP.ack);
        return false;
      case OPT.list:
        if (data.length !== 0) { reply(REP.errInvalid); return true; }
        reply(REP.server, encodeServerEntry(ex.name));
        reply(REP.ack);
        return true;
      case OPT.info:
      case OPT.go: {
        const go = decodeGoData(data);
        if (go === undefined) { reply(REP.errInvalid); return true; }
        if (go.name !== ex.name && go.name !== '') { reply(REP.errUnknown); return true; }
        reply(REP.info, encodeInfoExport(ex.size, FLAGS));
        if (go.requests.includes(INFO.blockSize)) reply(REP.info, encodeInfoBlockSize(MIN_BLOCK, PREFERRED_BLOCK, this.#server.maxPayload));
        reply(REP.ack);
        if (option === OPT.go) this.#decoder.startTransmission();
        return true;
      }
      default:
        reply(REP.errUnsup);
        return true;
    }
  }

  async #request(r: Extract<NbdClientMessage, { kind: 'request' }>): Promise<boolean> {
    const ex = this.#server.exportInfo;
    const answer = (error: number, data?: Uint8Array): void => { this.#socket.write(encodeSimpleReply(error, r.cookie, data)); };
    if (r.type === CMD.disc) return false;
    if (r.type === CMD.flush) {
      await this.#server.flushed();
      answer(0);
      return true;
    }
    if (r.type !== CMD.read && r.type !== CMD.write && r.type !== CMD.writeZeroes) { answer(ERRNO.einval); return true; }
    const offset = Number(r.offset);
    if (r.offset + BigInt(r.length) > BigInt(ex.size) || (r.type === CMD.read && r.length > this.#server.maxPayload)) {
      this.#server.log.debug({ offset: r.offset.toString(), length: r.length, size: ex.size }, 'NBD request outside the export: EINVAL');
      answer(ERRNO.einval);
      return true;
    }
    const signal = this.#server.signal;
    try {
      if (r.type === CMD.read) {
        answer(0, await ex.read(offset, r.length, signal));
        return true;
      }
      await this.#server.track(r.type === CMD.write ? ex.write(offset, r.data!, signal) : writeZeroes(ex, offset, r.length, signal));
      if ((r.flags & CMD_FLAG.fua) !== 0) await this.#server.flushed();
      answer(0);
    } catch (err) {
      if (signal.aborted) return false;
      const e = err as { code?: string; message?: string };
      this.#server.log.warn({ code: e.code, detail: e.message, offset, length: r.length }, 'NBD request failed: EIO');
      answer(ERRNO.eio);
    }
    return true;
  }
}

async function writeZeroes(ex: NbdExport, offset: number, length: number, signal: AbortSignal): Promise<void> {
  const zeroes = new Uint8Array(Math.min(length, ZEROES_STEP));
  for (let at = 0; at < length; at += ZEROES_STEP) await ex.write(offset + at, zeroes.subarray(0, Math.min(ZEROES_STEP, length - at)), signal);
}

/** A stale socket at `path` is removed; anything else there is refused. */
function clearSocketPath(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) {
    throw new NbdServerError(`${path} exists and is not a socket; the NBD server will not replace it`);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    throw new NbdServerError(`cannot remove the stale socket ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** An ImageDisk (image-disk.ts) as an NBD export named `name`. */
export function imageExport(name: string, disk: ImageDisk): NbdExport {
  return { name, size: disk.manifest.size, read: (o, n, s) => disk.read(o, n, s), write: (o, b, s) => disk.write(o, b, s) };
}
