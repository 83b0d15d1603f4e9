/**
 * Another site's chunk store, read over the chunk protocol (chunk-protocol.ts)
 * in a mutual-TLS 1.3 connection authenticated by the deployment's host
 * certificates: the server's certificate must chain to the deployment CA and
 * name the host we meant to reach. One connection, opened on first use and
 * again after a failure; requests are pipelined on it (the server answers in
 * order, so each answer goes to the oldest request waiting). Bytes it returns
 * are not trusted: the fetcher verifies them against the digest.
 */
import { X509Certificate } from 'node:crypto';
import tls, { type TLSSocket } from 'node:tls';
import type { TlsCredentials } from '../pki/certs.ts';
import { ChunkStatus, encodeRequest, ResponseDecoder, type ChunkRequest, type ChunkResponse } from './chunk-protocol.ts';
import type { ChunkSource } from './chunk-store.ts';
import { ChunkIntegrityError, ChunkPeerError, ChunkProtocolError, ChunkUnavailableError } from './errors.ts';
import { MAX_CHUNK_SIZE } from './manifest.ts';

export interface RemoteChunkSourceInit extends TlsCredentials {
  readonly site: string;
  /** The host serving the site's chunks: its certificate must name it. */
  readonly peer: string;
  readonly address: { readonly host: string; readonly port: number };
  /** Per request, connection included (default 30 s). */
  readonly timeoutMs?: number;
}

interface Waiter { resolve(r: ChunkResponse): void; reject(e: Error): void }

export class RemoteChunkSource implements ChunkSource {
  readonly site: string;
  readonly #init: RemoteChunkSourceInit;
  #socket: TLSSocket | undefined;
  #connected: Promise<TLSSocket> | undefined;
  #waiters: Waiter[] = [];

  constructor(init: RemoteChunkSourceInit) {
    this.site = init.site;
    this.#init = init;
  }

  async has(digest: string): Promise<boolean> {
    const r = await this.#request({ op: 'HAS', digest });
    return r.status === ChunkStatus.Held;
  }

  async read(digest: string): Promise<Uint8Array> {
    const r = await this.#request({ op: 'GET', digest });
    if (r.status === ChunkStatus.Ok) return r.bytes;
    throw new ChunkUnavailableError(digest, [this.site]);
  }

  /** Stores a chunk at this site (the server verifies it; only a writer's certificate may). */
  async write(digest: string, bytes: Uint8Array): Promise<void> {
    const r = await this.#request({ op: 'PUT', digest, bytes });
    if (r.status === ChunkStatus.Mismatch) throw new ChunkIntegrityError(digest, this.site, 'other bytes');
    if (r.status !== ChunkStatus.Stored) throw new ChunkPeerError(this.site, `PUT of ${digest} answered with status ${r.status}`);
  }

  close(): void {
    this.#fail(new ChunkPeerError(this.site, 'closed'));
  }

  #request(req: ChunkRequest): Promise<ChunkResponse> {
    const { op } = req;
    const run = async (): Promise<ChunkResponse> => {
      const socket = await this.#connect();
      return new Promise<ChunkResponse>((resolve, reject) => {
        const timer = setTimeout(() => this.#fail(new ChunkPeerError(this.site, `no answer to ${op} within ${this.#init.timeoutMs ?? 30_000} ms`)), this.#init.timeoutMs ?? 30_000);
        this.#waiters.push({
          resolve: (r) => { clearTimeout(timer); resolve(r); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
        socket.write(encodeRequest(req));
      });
    };
    return run();
  }

  #connect(): Promise<TLSSocket> {
    if (this.#socket !== undefined && !this.#socket.destroyed) return Promise.resolve(this.#socket);
    this.#connected ??= new Promise<TLSSocket>((resolve, reject) => {
      const { ca, cert, key, peer } = this.#init;
      const socket = tls.connect({
        host: this.#init.address.host, port: this.#init.address.port, ca, cert, key, minVersion: 'TLSv1.3',
        servername: /^[0-9.:]+$/.test(this.#init.address.host) ? undefined : this.#init.address.host,
        checkServerIdentity: (_host: string, c: tls.PeerCertificate) => (c.raw !== undefined && new X509Certificate(c.raw).checkHost(peer) !== undefined
          ? undefined
          : new ChunkPeerError(this.site, `the server's certificate does not name ${peer}`)),
      });
      const decoder = new ResponseDecoder({ maxChunkBytes: MAX_CHUNK_SIZE });
      const timer = setTimeout(() => socket.destroy(new ChunkPeerError(this.site, 'TLS handshake timed out')), this.#init.timeoutMs ?? 30_000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        this.#socket = socket;
        this.#connected = undefined;
        resolve(socket);
      });
      socket.on('data', (data: Buffer) => {
        for (const item of decoder.push(data)) {
          if (item instanceof ChunkProtocolError) {
            this.#fail(new ChunkPeerError(this.site, item.message, { cause: item }));
            return;
          }
          if (item.status === ChunkStatus.BadRequest || item.status === ChunkStatus.Forbidden) {
            this.#fail(new ChunkPeerError(this.site, item.status === ChunkStatus.Forbidden ? 'this certificate may not write chunks there' : 'the server refused a request as malformed'));
            return;
          }
          this.#waiters.shift()?.resolve(item);
        }
      });
      const lost = (err?: Error): void => {
        clearTimeout(timer);
        const e = err instanceof ChunkPeerError ? err : new ChunkPeerError(this.site, err?.message ?? 'connection closed', { cause: err });
        if (this.#connected !== undefined) {
          this.#connected = undefined;
          reject(e);
        }
        this.#fail(e);
      };
      socket.once('error', lost);
      socket.once('close', () => lost());
    });
    return this.#connected;
  }

  #fail(err: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
    this.#socket?.destroy();
    this.#socket = undefined;
  }
}
