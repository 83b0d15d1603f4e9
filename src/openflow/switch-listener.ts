import { EventEmitter } from 'node:events';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { SwitchConnectionError } from './errors.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, SwitchConnection, type SwitchConnectionInit } from './switch-connection.ts';

/**
 * The controller's listening side for OpenFlow switches: TCP, or TLS with
 * mutual authentication against a given CA (the deployment's). Each accepted
 * socket becomes a SwitchConnection; once its handshake names a datapath it
 * is announced as `switch`. A switch that connects again (after a restart,
 * or a connection we have not yet seen die) replaces its old connection by
 * datapath id: the old one is closed with VNET_ERR_OF_REPLACED, and
 * `switch-gone` is emitted only for a datapath that has no connection left.
 *
 * Limits: at most `maxPendingConnections` connections in their handshake at
 * once, each with the connection's handshake deadline (the TLS handshake
 * included). A newcomer is never refused: when the slots are full it takes
 * the place of the oldest pending connection from its own address, else of
 * one picked at random (as the other listeners' pending slots do:
 * src/common/pending-slots.ts), so a flood of silent connections cannot lock
 * a real switch out. A connection that fails — garbage bytes, a version
 * mismatch, silence — is closed with its error (`connection-error`), and
 * nothing else is touched.
 */

export interface SwitchListenerInit extends SwitchConnectionInit {
  /** Address to bind (default 127.0.0.1; the OpenFlow port is 6653). */
  host?: string;
  port?: number;
  /** TLS: switches must present a certificate signed by `ca`. */
  tls?: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer };
  /** Connections allowed in their handshake at once (default 64). */
  maxPendingConnections?: number;
}

export type SwitchListenerEvents = {
  switch: [SwitchConnection];
  'switch-gone': [bigint, SwitchConnectionError | undefined];
  'connection-error': [SwitchConnectionError, string];
};

export const OPENFLOW_PORT = 6653;

export class SwitchListener extends EventEmitter<SwitchListenerEvents> {
  readonly #init: SwitchListenerInit;
  readonly #server: Server;
  readonly #switches = new Map<bigint, SwitchConnection>();
  /** In their handshake, oldest first (a Set keeps insertion order). */
  readonly #pending = new Set<SwitchConnection>();
  #evicted = 0;

  constructor(init: SwitchListenerInit = {}) {
    super();
    this.#init = init;
    const onSocket = (socket: Socket): void => this.#accept(socket);
    if (init.tls === undefined) this.#server = createTcpServer(onSocket);
    else {
      const { ca, cert, key } = init.tls;
      const handshakeTimeout = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
      this.#server = createTlsServer({ ca, cert, key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', handshakeTimeout }, (s: TLSSocket) => onSocket(s));
      this.#server.on('tlsClientError', (err, socket) => {
        const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
        this.emit('connection-error', new SwitchConnectionError('VNET_ERR_OF_TLS', `switch ${remote} failed TLS: ${err.message}`, { cause: err }), remote);
      });
    }
  }

  /** Start listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#init.port ?? OPENFLOW_PORT, this.#init.host ?? '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** The bound address once listening. */
  get address(): AddressInfo | undefined {
    return (this.#server.address() as AddressInfo | null) ?? undefined;
  }

  /** Connected switches that finished their handshake, by datapath id. */
  get switches(): ReadonlyMap<bigint, SwitchConnection> {
    return this.#switches;
  }

  get pendingConnections(): number {
    return this.#pending.size;
  }

  /** Pending connections closed to make room for a newcomer. */
  get evictedConnections(): number {
    return this.#evicted;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const c of [...this.#pending, ...this.#switches.values()]) c.close();
    await closed;
  }

  #accept(socket: Socket): void {
    const conn = new SwitchConnection(socket, this.#init);
    if (this.#pending.size >= (this.#init.maxPendingConnections ?? 64)) this.#evictFor(conn);
    this.#pending.add(conn);
    conn.once('ready', () => {
      this.#pending.delete(conn);
      const dpid = conn.datapathId;
      const old = this.#switches.get(dpid);
      this.#switches.set(dpid, conn);
      old?.close(new SwitchConnectionError('VNET_ERR_OF_REPLACED', `switch ${dpidText(dpid)} reconnected from ${conn.remote}; this connection from ${old.remote} is replaced`));
      this.emit('switch', conn);
    });
    conn.once('close', (err) => {
      this.#pending.delete(conn);
      const dpid = conn.knownDatapathId;
      const routine = err === undefined || err.code === 'VNET_ERR_OF_REPLACED' || (dpid !== undefined && err.code === 'VNET_ERR_OF_DISCONNECTED');
      if (!routine) this.emit('connection-error', err, conn.remote);
      if (dpid !== undefined && this.#switches.get(dpid) === conn) {
        this.#switches.delete(dpid);
        this.emit('switch-gone', dpid, err);
      }
    });
  }

  /** Frees one pending slot for `newcomer`: its own address's oldest first, else a random one. */
  #evictFor(newcomer: SwitchConnection): void {
    const pending = [...this.#pending];
    const source = hostOf(newcomer.remote);
    const victim = pending.find((c) => hostOf(c.remote) === source) ?? pending[Math.floor(Math.random() * pending.length)];
    if (victim === undefined) return;
    this.#pending.delete(victim);
    this.#evicted++;
    victim.close(new SwitchConnectionError('VNET_ERR_OF_EVICTED', `switch ${victim.remote} was still in its handshake when ${newcomer.remote} needed its slot (at most ${this.#init.maxPendingConnections ?? 64} in their handshake)`));
  }
}

/** The address part of "address:port" (IPv6 addresses keep their colons). */
function hostOf(remote: string): string {
  return remote.slice(0, remote.lastIndexOf(':'));
}

/** A datapath id as OVS prints it: 16 hex digits. */
export function dpidText(dpid: bigint): string {
  return dpid.toString(16).padStart(16, '0');
}
