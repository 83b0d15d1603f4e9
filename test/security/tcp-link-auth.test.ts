/**
 * Host impersonation over plain TCP links (issue 11): a process that reaches
 * the hub's tunnel port and claims an existing host id must get no link and
 * no frames, whether it sends no proof, a made-up proof, a proof with another
 * key or certificate, or a recorded handshake; each refusal is counted and
 * logged with the claimed id and the source address, and the real host's
 * traffic goes on. Loopback, link key and host-certificate deployments.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Logger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { CertificateAuthenticator, LinkKeyAuthenticator, type LinkAuthenticator } from '../../src/dataplane/link-auth.ts';
import { unauthenticatedRefusal } from '../../src/dataplane/link-handshake.ts';
import { encodeAuth, encodeHello, HEADER_BYTES } from '../../src/dataplane/wire-messages.ts';
import type { HostMembership } from '../../src/dataplane/link-membership.ts';
import { startThreeDaemons, rawConnect, type ThreeDaemons } from './fixtures/three-daemons.ts';
import { waitFor } from '../helpers/wait.ts';
import { ManualClock } from '../../src/common/clock.ts';

const LINK = { keepaliveMs: 100, deadMs: 2000, handshakeTimeoutMs: 2000 };

/** A logger whose lines are kept, to check what a refusal logs. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger: Logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

function refusals(t: ThreeDaemons, code: string): number {
  return t.hub.listenerStats?.refusedByCode[code] ?? 0;
}

/** The first `n` messages of a recorded byte stream (header + body each). */
function messages(bytes: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (out.length < n && off + HEADER_BYTES <= bytes.length) {
    const len = bytes.readUIntBE(off + 1, 3);
    out.push(bytes.subarray(off, off + HEADER_BYTES + len));
    off += HEADER_BYTES + len;
  }
  return out;
}

/** A TCP relay to `port` that records what each side sent. */
async function recordingRelay(port: number): Promise<{ server: Server; port: number; fromDialer: Buffer[]; fromListener: Buffer[] }> {
  const fromDialer: Buffer[] = [];
  const fromListener: Buffer[] = [];
  const server = createServer((client) => {
    const up = connect(port, '127.0.0.1');
    client.on('data', (d: Buffer) => {
      fromDialer.push(d);
      up.write(d);
    });
    up.on('data', (d: Buffer) => {
      fromListener.push(d);
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    for (const s of [client, up]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, fromDialer, fromListener };
}

function suite(name: string, authFor: (id: string) => LinkAuthenticator, intruder: () => LinkAuthenticator): void {
  describe(`TCP link authentication: ${name}`, { timeout: 60_000 }, () => {
    const { logger, lines } = capturingLogger();
    let t: ThreeDaemons;
    const make = (id: string, membership: HostMembership): TcpTransport => new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: authFor(id), membership });
    before(async () => {
      t = await startThreeDaemons(logger, make);
      await t.forwarding('start');
    });
    after(async () => {
      await t.close();
    });

    it('refuses a hello claiming an existing host with no proof, counts and logs it, and the real host keeps its link and traffic', async () => {
      const before = refusals(t, 'VNET_ERR_LINK_AUTH');
      const hubLink = t.hub.link('hA');
      for (let i = 0; i < 5; i++) {
        const raw = await rawConnect(t.hubPort);
        raw.socket.write(encodeHello({ hostId: 'hA', kind: 'backbone', role: 'dialer' }));
        await waitFor(() => raw.closed, 'impostor disconnected');
        assert.equal(raw.goodbyeCode(), 'auth');
        assert.ok(!raw.controls.some((c) => c.type === 'hello'), 'the hub never answered with its own hello');
      }
      assert.equal(refusals(t, 'VNET_ERR_LINK_AUTH'), before + 5);
      assert.equal(t.hub.link('hA'), hubLink, "the real hA's link was not replaced");
      const line = lines.find((l) => l['code'] === 'VNET_ERR_LINK_AUTH' && l['claimedHost'] === 'hA');
      assert.ok(line !== undefined, 'the refusal is logged with the claimed host id');
      assert.equal(line['source'], '127.0.0.1');
      await t.forwarding('after the impostors');
    });

    it('refuses an impostor that answers the challenge with a made-up proof', async () => {
      const before = refusals(t, 'VNET_ERR_LINK_AUTH');
      const raw = await rawConnect(t.hubPort);
      raw.socket.write(encodeHello({ hostId: 'hA', kind: 'backbone', role: 'dialer', auth: authFor('hA').method }));
      await waitFor(() => raw.controls.some((c) => c.type === 'auth'), "the hub's proof");
      raw.socket.write(encodeAuth({ certificate: Buffer.alloc(0), proof: randomBytes(64) }));
      await waitFor(() => raw.closed, 'impostor disconnected');
      assert.equal(refusals(t, 'VNET_ERR_LINK_AUTH'), before + 1);
      await t.forwarding('after the made-up proof');
    });

    it('gives no link to a dialer whose credentials are not the deployment’s for that host', async () => {
      const before = refusals(t, 'VNET_ERR_LINK_AUTH');
      const hubLink = t.hub.link('hA');
      const impostor = new TcpTransport({ logger }, { localHost: 'hA', ...LINK, authenticator: intruder() });
      const link = await impostor.connect({ host: '127.0.0.1', port: t.hubPort, kind: 'backbone', expectedPeer: 'hub' }).catch((err: Error & { code?: string }) => err);
      if (link instanceof Error) {
        assert.equal(link.code, 'VNET_ERR_LINK_AUTH', 'the impostor saw the hub’s proof fail with its own key');
      } else {
        // The impostor could check the hub's proof (same CA); the hub then refused the impostor's.
        await waitFor(() => link.closed, 'the impostor’s link closed by the hub');
        await waitFor(() => refusals(t, 'VNET_ERR_LINK_AUTH') === before + 1, 'the refusal counted');
      }
      assert.equal(t.hub.link('hA'), hubLink, "the real hA's link was not replaced");
      await t.forwarding('after the impostor dialer');
    });

    it('refuses a recorded handshake replayed to the hub, and a recorded hub answer replayed to a dialer', async () => {
      const relay = await recordingRelay(t.hubPort);
      try {
        // A real hB handshake, recorded on the wire (then let go: the hub keeps hB's link in its slot).
        const real = new TcpTransport({ logger }, { localHost: 'hB', ...LINK, authenticator: authFor('hB') });
        const link = await real.connect({ host: '127.0.0.1', port: relay.port, kind: 'backbone', expectedPeer: 'hub' });
        await waitFor(() => messages(Buffer.concat(relay.fromDialer), 2).length === 2, 'the dialer’s hello and auth recorded');
        await link.close();
        const [hello, auth] = messages(Buffer.concat(relay.fromDialer), 2) as [Buffer, Buffer];
        const answer = Buffer.concat(messages(Buffer.concat(relay.fromListener), 2));

        const before = refusals(t, 'VNET_ERR_LINK_AUTH');
        const raw = await rawConnect(t.hubPort);
        raw.socket.write(hello);
        await waitFor(() => raw.controls.some((c) => c.type === 'auth'), "the hub's fresh challenge");
        raw.socket.write(auth);
        await waitFor(() => raw.closed, 'replayer disconnected');
        assert.equal(raw.goodbyeCode(), 'auth');
        assert.equal(refusals(t, 'VNET_ERR_LINK_AUTH'), before + 1);

        // The other way: a fake hub replays the real hub's recorded hello and proof to a real dialer.
        const fake = createServer((s) => s.once('data', () => s.write(answer)));
        await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
        try {
          const dialer = new TcpTransport({ logger }, { localHost: 'hB', ...LINK, authenticator: authFor('hB') });
          await assert.rejects(dialer.connect({ host: '127.0.0.1', port: (fake.address() as AddressInfo).port, kind: 'backbone', expectedPeer: 'hub' }), { code: 'VNET_ERR_LINK_AUTH' });
        } finally {
          fake.close();
        }
      } finally {
        relay.server.close();
      }
      await t.forwarding('after the replays');
    });
  });
}

let ca: PemPair;
let otherCa: PemPair;
const certs = new Map<string, PemPair>();
const key = randomBytes(32);
before(async () => {
  ca = await createCa();
  otherCa = await createCa({ commonName: 'another deployment' });
  for (const h of ['hub', 'hA', 'hB', 'mallory']) certs.set(h, await issueHostCertificate(ca, h));
  certs.set('foreign-hA', await issueHostCertificate(otherCa, 'hA'));
});

suite('deployment link key', () => new LinkKeyAuthenticator(key), () => new LinkKeyAuthenticator(randomBytes(32)));
suite('host certificates (a CA-signed certificate for another host)', (id) => new CertificateAuthenticator({ ca: ca.cert, ...certs.get(id)! }), () => new CertificateAuthenticator({ ca: ca.cert, ...certs.get('mallory')! }));
suite('host certificates (a certificate for hA from another CA)', (id) => new CertificateAuthenticator({ ca: ca.cert, ...certs.get(id)! }), () => new CertificateAuthenticator({ ca: otherCa.cert, ...certs.get('foreign-hA')! }));

describe('unauthenticated TCP links', () => {
  const socketBetween = (local: string, remote: string): Socket => {
    const s = new Socket();
    Object.defineProperty(s, 'localAddress', { value: local });
    Object.defineProperty(s, 'remoteAddress', { value: remote });
    return s;
  };

  it('are refused off loopback unless the operator allows them, and never when authenticated', () => {
    assert.equal(unauthenticatedRefusal(socketBetween('127.0.0.1', '127.0.0.1'), 'none', false), undefined);
    assert.equal(unauthenticatedRefusal(socketBetween('::1', '::ffff:127.0.0.5'), 'none', false), undefined);
    assert.match(unauthenticatedRefusal(socketBetween('10.0.0.1', '10.0.0.2'), 'none', false) ?? '', /refused off loopback/);
    assert.match(unauthenticatedRefusal(socketBetween('127.0.0.1', '10.0.0.2'), 'none', false) ?? '', /refused off loopback/);
    assert.equal(unauthenticatedRefusal(socketBetween('10.0.0.1', '10.0.0.2'), 'none', true), undefined);
    assert.equal(unauthenticatedRefusal(socketBetween('10.0.0.1', '10.0.0.2'), 'link-key', false), undefined);
  });

  it('a listener that authenticates refuses a dialer that does not, and the other way round', async () => {
    const { logger } = capturingLogger();
    const withKey = new TcpTransport({ logger }, { localHost: 'a', ...LINK, authenticator: new LinkKeyAuthenticator(key) });
    const without = new TcpTransport({ logger }, { localHost: 'b', ...LINK });
    const l1 = await withKey.listen({ host: '127.0.0.1', port: 0 }, () => assert.fail('no link'));
    const l2 = await without.listen({ host: '127.0.0.1', port: 0 }, () => assert.fail('no link'));
    try {
      await assert.rejects(without.connect({ host: '127.0.0.1', port: l1.port, kind: 'backbone' }), { code: 'VNET_ERR_HANDSHAKE', message: /\(auth\).*peer authenticates with none, this host with link-key/ });
      await assert.rejects(withKey.connect({ host: '127.0.0.1', port: l2.port, kind: 'backbone' }), { code: 'VNET_ERR_HANDSHAKE', message: /\(auth\).*peer authenticates with link-key, this host with none/ });
      await waitFor(() => l1.stats.refusedByCode['VNET_ERR_LINK_AUTH'] === 1 && l2.stats.refusedByCode['VNET_ERR_LINK_AUTH'] === 1, 'both refusals counted');
    } finally {
      await l1.close();
      await l2.close();
    }
  });
});

describe('refusal warnings', () => {
  it('are at most 10 a second; the rest go to debug and the next warning counts them', async () => {
    const { logger, lines } = capturingLogger();
    const clock = new ManualClock();
    const hub = new TcpTransport({ logger, clock }, { localHost: 'hub', ...LINK, authenticator: new LinkKeyAuthenticator(key) });
    const listener = await hub.listen({ host: '127.0.0.1', port: 0 }, () => assert.fail('no link'));
    const impostor = async (): Promise<void> => {
      const raw = await rawConnect(listener.port);
      raw.socket.write(encodeHello({ hostId: 'hA', kind: 'backbone', role: 'dialer' }));
      await waitFor(() => raw.closed, 'impostor disconnected');
    };
    try {
      for (let i = 0; i < 15; i++) await impostor();
      await waitFor(() => listener.stats.refusedByCode['VNET_ERR_LINK_AUTH'] === 15, 'all 15 counted');
      assert.equal(lines.filter((l) => l['msg'] === 'inbound link refused').length, 10);
      clock.advance(1000);
      await impostor();
      await waitFor(() => lines.filter((l) => l['msg'] === 'inbound link refused').length === 11, 'a warning in the next second');
      assert.equal(lines.at(-1)!['suppressed'], 5);
    } finally {
      await listener.close();
    }
  });
});
