import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import { componentLogger } from '../common/logger.ts';
import type { TlsCredentials } from '../pki/certs.ts';
import { HandshakeError, RecordLayerError } from './errors.ts';
import type { Link } from './link-interface.ts';
import { openLink } from './link.ts';
import { listenOn, serverListener } from './tcp-transport.ts';
import {
  connectTimeoutMs,
  dialInit,
  transportError,
  waitForConnect,
  type ConnectOptions,
  type LinkSettings,
  type ListenOptions,
  type Transport,
  type TransportComponents,
  type TransportListener,
} from './transport.ts';
import { HandshakeAcceptor, type PendingConnection } from './handshake-acceptor.ts';
import { formatHostPort } from '../common/host-port.ts';
import { ConfigError } from '../common/errors.ts';
import { PLAIN_ALPN, recordsAlpn, type RecordVersion } from './record-keys.ts';
import { rekeyProblems, type RekeyThresholds } from './record-layer.ts';
import { agreedOnRecords, recordsAvailable, switchToRecords } from './tls-switch.ts';
import type { Duplex } from 'node:stream';

/**
 * Links over mutual TLS (1.3 only). Both sides present a certificate signed
 * by the deployment CA (certs.ts) and trust only that CA: the server
 * requests and verifies the client's certificate, the client pins the CA.
 * A peer whose certificate comes from another CA fails the TLS handshake
 * (HandshakeError). Identity is checked one layer up, in the link
 * handshake: the host id in each hello must be a name (CN or SAN DNS) in
 * that side's certificate, and equal `expectedPeer` when one is given, so
 * hostname matching on the address we dialled is not needed (we dial IPs),
 * and be a host of the deployment (`membership`). On the listener, each raw
 * connection holds a pending slot from accept, so the slot's deadline and
 * caps cover the TLS handshake as well as the hello (handshake-acceptor.ts).
 *
 * Native records (tls-switch.ts, record-layer.ts): both sides offer ALPN
 * `vnet-records/2` (rekeying in place), `vnet-records/1` and PLAIN_ALPN; when
 * both offered a records version, the connection switches from TLS records to
 * AES-256-GCM records keyed by the TLS exporter right after the TLS
 * handshake, before the hello, so that the native forwarder can carry the
 * link on its own thread. A peer that offers only /1 gets /1 (no rekeying);
 * one that offers none (an older daemon, or `nativeRecords: false`) keeps
 * plain TLS.
 */
export interface TlsTransportInit extends LinkSettings, TlsCredentials {
  /** Offer native records; default: when the daemon runs the native forwarder (`offerNativeRecords`). Needs the TAP addon's record layer either way. */
  nativeRecords?: boolean;
  /** The native records versions offered, most preferred first (default [2, 1]; [1]: as a daemon from before rekeying). */
  nativeRecordVersions?: readonly RecordVersion[];
  /** vnet-records/2: when a direction moves to its next key (default DEFAULT_REKEY; tests set tiny ones). */
  recordRekey?: RekeyThresholds;
}

/** Connection errors that mean nothing was reached (as opposed to a refused TLS handshake). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EADDRNOTAVAIL', 'EAI_AGAIN']);

export class TlsTransport implements Transport {
  readonly kind = 'tls' as const;
  readonly #components: TransportComponents;
  readonly #init: TlsTransportInit;

  #offerRecords: boolean;

  constructor(components: TransportComponents, init: TlsTransportInit) {
    this.#components = { ...components, logger: componentLogger(components.logger, 'tls-transport') };
    this.#init = init;
    this.#offerRecords = init.nativeRecords ?? false;
    const versions = init.nativeRecordVersions;
    if (versions !== undefined && (versions.length === 0 || versions.some((v) => v !== 1 && v !== 2) || new Set(versions).size !== versions.length)) {
      throw new ConfigError(`must list records versions 1 and/or 2 once each, got ${JSON.stringify(versions)}`, { key: 'nativeRecordVersions' });
    }
    const problems = init.recordRekey === undefined ? [] : rekeyProblems(init.recordRekey);
    if (problems.length > 0) throw new ConfigError(problems.join('; '), { key: 'recordRekey' });
  }

  offerNativeRecords(offer: boolean): void {
    if (this.#init.nativeRecords === undefined) this.#offerRecords = offer;
  }

  /** ALPN: native records first (/2 before /1) when we offer them (and this build has them), plain TLS always. */
  #alpn(): string[] {
    return this.#offerRecords && recordsAvailable() ? [...recordsAlpn(this.#init.nativeRecordVersions ?? [2, 1]), PLAIN_ALPN] : [PLAIN_ALPN];
  }

  /** The socket the link runs on: the TLS socket, or the same connection switched to native records. */
  async #linkSocket(socket: TLSSocket, role: 'dialer' | 'listener'): Promise<Duplex> {
    if (!agreedOnRecords(socket)) return socket;
    const records = await switchToRecords(socket, { role, timeoutMs: connectTimeoutMs(this.#init), clock: this.#components.clock, rekey: this.#init.recordRekey });
    this.#components.logger.debug({ role, remote: socket.remoteAddress, alpn: socket.alpnProtocol }, 'switched to native records');
    return records;
  }

  async listen(opts: ListenOptions, onLink: (link: Link) => void): Promise<TransportListener> {
    const init = this.#init;
    const acceptor = new HandshakeAcceptor(this.#components, init, onLink);
    const server = createServer({
      ca: init.ca,
      cert: init.cert,
      key: init.key,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      allowHalfOpen: false,
      ALPNProtocols: this.#alpn(),
    });
    // Each raw connection takes its slot before TLS starts, so the slot's deadline and caps cover the TLS handshake too.
    // The TLS socket is matched to its connection by the remote address and port (unique among open connections).
    const inTls = new Map<string, PendingConnection>();
    const keyOf = (s: Socket): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;
    server.on('connection', (raw: Socket) => {
      const pending = acceptor.admit(raw);
      if (pending === undefined) return;
      const key = keyOf(raw);
      inTls.set(key, pending);
      raw.once('close', () => {
        if (inTls.get(key) !== pending) return;
        inTls.delete(key);
        acceptor.fail(pending, new HandshakeError('connection closed before the TLS handshake finished', undefined, 'VNET_ERR_TLS'));
      });
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      const key = keyOf(socket);
      const pending = inTls.get(key);
      inTls.delete(key);
      if (pending === undefined) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      this.#linkSocket(socket, 'listener').then(
        (stream) => acceptor.handshake(pending, stream),
        (err: Error & { code?: string }) => {
          socket.destroy();
          acceptor.fail(pending, err);
        },
      );
    });
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const key = keyOf(socket);
      const pending = inTls.get(key);
      inTls.delete(key);
      socket.destroy();
      if (pending !== undefined) acceptor.fail(pending, new HandshakeError(`TLS handshake refused: ${err.message}`, { cause: err }, 'VNET_ERR_TLS'));
    });
    await listenOn(server, opts, 'tls');
    return serverListener(server, acceptor);
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    const init = this.#init;
    const where = formatHostPort(opts);
    const socket = tlsConnect({
      host: opts.host,
      port: opts.port,
      ca: init.ca,
      cert: init.cert,
      key: init.key,
      minVersion: 'TLSv1.3',
      ALPNProtocols: this.#alpn(),
      // The certificate is checked against the peer's hello by the link handshake (see above).
      checkServerIdentity: () => undefined,
      ...(opts.expectedPeer !== undefined && isIP(opts.expectedPeer) === 0 ? { servername: opts.expectedPeer } : {}),
    });
    const wait = { signal: opts.signal, timeoutMs: connectTimeoutMs(init), clock: this.#components.clock };
    await waitForConnect(socket, 'secureConnect', `connect to ${where}`, wait, (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && UNREACHABLE.has(code)) return transportError(`cannot connect to ${where}`, err);
      return new HandshakeError(`TLS handshake with ${where} failed: ${err.message}`, { cause: err });
    });
    socket.setNoDelay(true);
    let stream: Duplex;
    try {
      stream = await this.#linkSocket(socket, 'dialer');
    } catch (err) {
      socket.destroy();
      if (err instanceof RecordLayerError) throw new HandshakeError(`with ${where}: ${err.message}`, { cause: err }, err.code);
      throw new HandshakeError(`TLS handshake with ${where} failed: ${(err as Error).message}`, { cause: err });
    }
    return openLink(dialInit(this.#components, init, opts, stream));
  }
}

