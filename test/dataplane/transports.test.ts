import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import type { LinkSettings } from '../../src/dataplane/transport.ts';
import { transportCompliance } from './transport-compliance.ts';

// The transport compliance suite, run against every Transport implementation.

const logger = silentLogger();

function connected(socket: Duplex, event: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    socket.once(event, () => resolve(socket));
    socket.once('error', reject);
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const network = new MemoryNetwork();
transportCompliance('memory', {
  make: (host, settings: Partial<LinkSettings> = {}) => new MemoryTransport({ logger }, { ...settings, localHost: host, network }),
  raw: async (port) => network.dial('127.0.0.1', port),
  deadPort: async () => 1,
});

transportCompliance('tcp', {
  make: (host, settings: Partial<LinkSettings> = {}) => new TcpTransport({ logger }, { ...settings, localHost: host }),
  raw: (port) => connected(netConnect({ host: '127.0.0.1', port }), 'connect'),
  deadPort: freePort,
});

let ca: PemPair;
const hostCerts = new Map<string, PemPair>();
transportCompliance('tls', {
  async setup() {
    ca = await createCa();
    for (const h of ['a', 'b', 'raw']) hostCerts.set(h, await issueHostCertificate(ca, h));
  },
  make: (host, settings: Partial<LinkSettings> = {}) =>
    new TlsTransport({ logger }, { ...settings, localHost: host, ca: ca.cert, cert: hostCerts.get(host)!.cert, key: hostCerts.get(host)!.key }),
  raw: (port, as) =>
    connected(
      tlsConnect({ host: '127.0.0.1', port, ca: ca.cert, cert: hostCerts.get(as)!.cert, key: hostCerts.get(as)!.key, checkServerIdentity: () => undefined }),
      'secureConnect',
    ),
  deadPort: freePort,
});

// The same over native records (both ends offer them; the raw client, like an older daemon, does not).
transportCompliance('tls-records', {
  async setup() {
    ca = await createCa();
    for (const h of ['a', 'b', 'raw']) hostCerts.set(h, await issueHostCertificate(ca, h));
  },
  make: (host, settings: Partial<LinkSettings> = {}) =>
    new TlsTransport({ logger }, { ...settings, nativeRecords: true, localHost: host, ca: ca.cert, cert: hostCerts.get(host)!.cert, key: hostCerts.get(host)!.key }),
  raw: (port, as) =>
    connected(
      tlsConnect({ host: '127.0.0.1', port, ca: ca.cert, cert: hostCerts.get(as)!.cert, key: hostCerts.get(as)!.key, checkServerIdentity: () => undefined }),
      'secureConnect',
    ),
  deadPort: freePort,
});
