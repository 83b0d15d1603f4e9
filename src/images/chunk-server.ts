/**
 * Serves a site's chunk store to the other sites' daemons (chunk-protocol.ts).
 *
 *   accept    TLS 1.3, mutual: the client certificate must chain to the
 *             deployment CA, else the handshake fails (any host of the
 *             deployment may read chunks; nothing else may connect)
 *   requests  handled one at a time per connection, in order; HAS answers
 *             HELD or ABSENT; GET reads the chunk verified (a copy corrupted
 *             on this disk is removed and answered ABSENT, so the reader
 *             goes to the next replica) and sends it
 *   PUT       only from a client whose certificate names one of `writers`
 *             (the controller publishing at this origin site); anyone else
 *             is answered FORBIDDEN and cut. The bytes are verified against
 *             the digest before they are stored (MISMATCH: nothing stored)
 *   bad line  BAD_REQUEST, then the connection is closed
 *   limits    `maxConnections` at once (a newcomer over it is cut),
 *             `idleTimeoutMs` without a request closes a connection
 */
import { X509Certificate } from 'node:crypto';
import tls, { type TLSSocket } from 'node:tls';
import { componentLogger, type Logger } from '../common/logger.ts';
import { formatHostPort } from '../common/host-port.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { MAX_CHUNK_SIZE } from './manifest.ts';
import { ChunkStatus, encodeResponse, RequestDecoder, type ChunkRequest, type ChunkResponse } from './chunk-protocol.ts';
import type { ChunkStore } from './chunk-store.ts';
import { ChunkIntegrityError, ChunkPeerError, ChunkProtocolError } from './errors.ts';

/** The controller's certificate name (its host id, `vnet controller`'s CONTROLLER_HOST_ID): the identity a daemon's chunk server lets publish chunks. */
export const PUBLISHER_IDENTITY = 'controller';

export interface ChunkServerInit extends TlsCredentials {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Default 64. */
  readonly maxConnections?: number;
  /** Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Identities (certificate names) allowed to PUT chunks (default none: read-only). */
  readonly writers?: readonly string[];
}

export class ChunkServer {
  readonly #server: tls.Server;
  readonly #store: ChunkStore;
  readonly #log: Logger;
  readonly #sockets = new Set<TLSSocket>();
  #port = 0;
  #host = '';
  readonly #writers: readonly string[];

  private constructor(logger: Logger, store: ChunkStore, init: ChunkServerInit) {
    this.#store = store;
    this.#log = componentLogger(logger, 'chunk-server', { site: store.site });
    this.#writers = init.writers ?? [];
    this.#server = tls.createServer({
      ca: init.ca, cert: init.cert, key: init.key,
      requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', handshakeTimeout: 5000,
    });
    this.#server.maxConnections = init.maxConnections ?? 64;
    this.#server.on('secureConnection', (socket: TLSSocket) => this.#serve(socket, init.idleTimeoutMs ?? 60_000));
    this.#server.on('tlsClientError', (err: Error) => this.#log.debug({ err: err.message }, 'chunk client TLS refused'));
    this.#server.on('error', (err) => this.#log.warn({ err: err.message }, 'chunk server error'));
  }

  static async listen(components: { logger: Logger }, store: ChunkStore, init: ChunkServerInit): Promise<ChunkServer> {
    const s = new ChunkServer(components.logger, store, init);
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(new ChunkPeerError(store.site, `cannot listen on ${formatHostPort(init)}: ${err.message}`, { cause: err }));
      s.#server.once('error', fail);
      s.#server.listen(init.port, init.host, () => { s.#server.off('error', fail); resolve(); });
    });
    const addr = s.#server.address();
    s.#port = typeof addr === 'object' && addr !== null ? addr.port : init.port;
    s.#host = init.host;
    s.#log.info({ host: init.host, port: s.#port }, 'chunk server listening');
    return s;
  }

  get address(): { host: string; port: number } {
    return { host: this.#host, port: this.#port };
  }

  #serve(socket: TLSSocket, idleMs: number): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'chunk connection error'));
    socket.setTimeout(idleMs, () => socket.destroy());
    const decoder = new RequestDecoder({ maxPutBytes: this.#writers.length > 0 ? MAX_CHUNK_SIZE : 0 });
    let writer: boolean | undefined;
    const mayWrite = (): boolean => {
      if (writer !== undefined) return writer;
      const raw = socket.getPeerCertificate().raw;
      const cert = raw === undefined ? undefined : new X509Certificate(raw);
      writer = cert !== undefined && this.#writers.some((w) => cert.checkHost(w) !== undefined);
      return writer;
    };
    let queue = Promise.resolve();
    socket.on('data', (data: Buffer) => {
      for (const item of decoder.push(data)) {
        queue = queue.then(async () => {
          if (socket.destroyed) return;
          if (item instanceof ChunkProtocolError) {
            this.#log.debug({ code: item.code, err: item.message }, 'bad chunk request');
            socket.end(encodeResponse({ status: ChunkStatus.BadRequest }));
            return;
          }
          if (item.op === 'PUT' && !mayWrite()) {
            this.#log.warn({ digest: item.digest }, 'a chunk PUT from a client not allowed to write: refused');
            socket.end(encodeResponse({ status: ChunkStatus.Forbidden }));
            return;
          }
          socket.write(encodeResponse(await this.#answer(item)));
        });
      }
    });
  }

  async #answer(req: ChunkRequest): Promise<ChunkResponse> {
    if (req.op === 'PUT') {
      try {
        await this.#store.put(req.bytes, req.digest);
        return { status: ChunkStatus.Stored };
      } catch (e) {
        if (e instanceof ChunkIntegrityError) return { status: ChunkStatus.Mismatch };
        throw e;
      }
    }
    if (!(await this.#store.has(req.digest))) return { status: ChunkStatus.Absent };
    if (req.op === 'HAS') return { status: ChunkStatus.Held };
    try {
      return { status: ChunkStatus.Ok, bytes: await this.#store.get(req.digest) };
    } catch (e) {
      if (e instanceof ChunkIntegrityError) {
        this.#log.warn({ digest: req.digest }, 'a stored chunk was corrupted on disk; removed');
        return { status: ChunkStatus.Absent };
      }
      if ((e as { code?: string }).code === 'VNET_ERR_IMAGE_CHUNK_UNAVAILABLE') return { status: ChunkStatus.Absent };
      throw e;
    }
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
