import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import type { Link } from '../../src/dataplane/link-interface.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import type { TransportListener } from '../../src/dataplane/transport.ts';
import { waitFor } from '../helpers/wait.ts';

// What only mutual TLS adds to the compliance suite: who may connect, and
// that the host id in a hello is the one the certificate vouches for.

const logger = silentLogger();
let ca: PemPair;
let otherCa: PemPair;
const certs = new Map<string, PemPair>();

function transport(localHost: string, certOf = localHost, trust: PemPair = ca): TlsTransport {
  const c = certs.get(certOf)!;
  return new TlsTransport({ logger }, { localHost, ca: trust.cert, cert: c.cert, key: c.key });
}

describe('tls transport: authentication', () => {
  const listeners: TransportListener[] = [];
  const links: Link[] = [];
  before(async () => {
    ca = await createCa();
    otherCa = await createCa({ commonName: 'someone else' });
    for (const h of ['a', 'b', 'c']) certs.set(h, await issueHostCertificate(ca, h));
    certs.set('intruder', await issueHostCertificate(otherCa, 'a'));
  });
  after(async () => {
    for (const l of links) await l.close();
    for (const l of listeners) await l.close();
  });
  const listenB = async (t = transport('b')): Promise<{ listener: TransportListener; inbound: Link[] }> => {
    const inbound: Link[] = [];
    const listener = await t.listen({ host: '127.0.0.1', port: 0 }, (l) => {
      inbound.push(l);
      links.push(l);
    });
    listeners.push(listener);
    return { listener, inbound };
  };

  it('accepts a peer whose certificate comes from the deployment CA', async () => {
    const { listener, inbound } = await listenB();
    const a = await transport('a').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone', expectedPeer: 'b' });
    links.push(a);
    await waitFor(() => inbound.length === 1, 'inbound link', 30_000);
    assert.equal(a.peerHost, 'b');
    assert.equal(inbound[0]!.peerHost, 'a');
  });

  it('refuses a client whose certificate is signed by another CA', async () => {
    const { listener, inbound } = await listenB();
    await assert.rejects(transport('a', 'intruder').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone' }), { code: 'VNET_ERR_HANDSHAKE' });
    await waitFor(() => listener.stats.refused >= 1, 'refusal counted', 30_000);
    assert.equal(inbound.length, 0);
  });

  it('refuses a server whose certificate is signed by another CA', async () => {
    const { listener, inbound } = await listenB(transport('a', 'intruder', otherCa));
    await assert.rejects(transport('b').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone' }), {
      code: 'VNET_ERR_HANDSHAKE',
      message: /TLS handshake .* failed/,
    });
    assert.equal(inbound.length, 0);
  });

  it('refuses a client that presents no certificate', async () => {
    const { listener, inbound } = await listenB();
    const socket = tlsConnect({ host: '127.0.0.1', port: listener.port, ca: ca.cert, checkServerIdentity: () => undefined });
    socket.on('error', () => {});
    await waitFor(() => socket.destroyed, 'connection refused', 30_000);
    assert.equal(inbound.length, 0);
    await waitFor(() => listener.stats.refused >= 1, 'refusal counted', 30_000);
  });

  it('refuses a client whose hello names another host than its certificate', async () => {
    const { listener, inbound } = await listenB();
    // Host "a" presenting c's (valid) certificate.
    await assert.rejects(transport('a', 'c').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone' }), {
      code: 'VNET_ERR_HANDSHAKE',
      message: /peer refused the link \(refused\): peer says it is a but its certificate names c/,
    });
    await waitFor(() => listener.stats.refused === 1, 'refusal counted', 30_000);
    assert.equal(inbound.length, 0);
  });

  it('refuses a server whose hello names another host than its certificate', async () => {
    const { listener } = await listenB(transport('b', 'c'));
    await assert.rejects(transport('a').connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone' }), {
      code: 'VNET_ERR_HANDSHAKE',
      message: /peer says it is b but its certificate names c/,
    });
  });

  it('gives up on a server that accepts the connection but never answers the TLS handshake', async () => {
    const held: Socket[] = [];
    const mute = createServer((s) => held.push(s));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    try {
      const port = (mute.address() as AddressInfo).port;
      const c = certs.get('a')!;
      const t = new TlsTransport({ logger }, { localHost: 'a', ca: ca.cert, cert: c.cert, key: c.key, handshakeTimeoutMs: 300 });
      await assert.rejects(t.connect({ host: '127.0.0.1', port, kind: 'backbone' }), { code: 'VNET_ERR_HANDSHAKE', message: /timed out after 300 ms/ });
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });
});
