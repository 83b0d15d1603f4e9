import { connect as netConnect, createServer, type AddressInfo, type Server } from 'node:net';
import { componentLogger } from '../common/logger.ts';
import type { Link } from './link-interface.ts';
import { openLink } from './link.ts';
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
import { HandshakeAcceptor } from './handshake-acceptor.ts';
import { formatHostPort } from '../common/host-port.ts';

/**
 * Links over plain TCP (Nagle off), frames in clear. Each side proves its
 * host id in the handshake with the settings' `authenticator` (host
 * certificate or deployment link key, link-auth.ts); without one, links are
 * accepted only between two loopback addresses unless `allowUnauthenticated`.
 */
export class TcpTransport implements Transport {
  readonly kind = 'tcp' as const;
  readonly #components: TransportComponents;
  readonly #settings: LinkSettings;

  constructor(components: TransportComponents, init: LinkSettings) {
    this.#components = { ...components, logger: componentLogger(components.logger, 'tcp-transport') };
    this.#settings = init;
  }

  async listen(opts: ListenOptions, onLink: (link: Link) => void): Promise<TransportListener> {
    const acceptor = new HandshakeAcceptor(this.#components, this.#settings, onLink);
    const server = createServer({ noDelay: true, allowHalfOpen: false }, (socket) => acceptor.accept(socket));
    await listenOn(server, opts, 'tcp');
    return serverListener(server, acceptor);
  }

  async connect(opts: ConnectOptions): Promise<Link> {
    const socket = netConnect({ host: opts.host, port: opts.port, noDelay: true });
    const wait = { signal: opts.signal, timeoutMs: connectTimeoutMs(this.#settings), clock: this.#components.clock };
    await waitForConnect(socket, 'connect', `connect to ${formatHostPort(opts)}`, wait, (err) =>
      transportError(`cannot connect to ${formatHostPort(opts)}`, err),
    );
    return openLink(dialInit(this.#components, this.#settings, opts, socket));
  }
}

/** Start `server` listening; address-in-use and the like become TransportError. */
export function listenOn(server: Server, opts: ListenOptions, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(transportError(`${what} cannot listen on ${formatHostPort(opts)}`, err));
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** The TransportListener of a net/tls server. */
export function serverListener(server: Server, acceptor: HandshakeAcceptor): TransportListener {
  const address = server.address() as AddressInfo;
  server.on('error', () => {}); // errors after listening (EMFILE on accept) must not crash the process
  return {
    host: address.address,
    port: address.port,
    stats: acceptor.stats,
    close: () =>
      new Promise<void>((resolve) => {
        acceptor.abortAll();
        server.close(() => resolve());
      }),
  };
}
