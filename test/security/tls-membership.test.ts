/**
 * Membership (issue 11): a certificate signed by the deployment's CA for a
 * host that is not in the deployment gets no link — on TLS and on
 * certificate-authenticated TCP, from the configured members or from the
 * controller's list (links already up close when it arrives) — and the
 * deployment's own hosts keep their traffic.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { CertificateAuthenticator } from '../../src/dataplane/link-auth.ts';
import { HostMembership } from '../../src/dataplane/link-membership.ts';
import type { Transport } from '../../src/dataplane/transport.ts';
import { startThreeDaemons, type ThreeDaemons } from './fixtures/three-daemons.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 2000, handshakeTimeoutMs: 2000 };
const MEMBERS = ['hub', 'hA', 'hB'];
let ca: PemPair;
const certs = new Map<string, PemPair>();

before(async () => {
  ca = await createCa();
  for (const h of [...MEMBERS, 'mallory']) certs.set(h, await issueHostCertificate(ca, h));
});

const tls = (id: string, membership?: HostMembership): Transport => new TlsTransport({ logger }, { localHost: id, ...LINK, ca: ca.cert, ...certs.get(id)!, ...(membership === undefined ? {} : { membership }) });
const tcp = (id: string, membership?: HostMembership): Transport =>
  new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: new CertificateAuthenticator({ ca: ca.cert, ...certs.get(id)! }), ...(membership === undefined ? {} : { membership }) });

const notMember = (t: ThreeDaemons): number => t.hub.listenerStats?.refusedByCode['VNET_ERR_NOT_MEMBER'] ?? 0;

for (const [name, make] of [['TLS', tls], ['TCP with host certificates', tcp]] as const) {
  describe(`membership on ${name}`, { timeout: 60_000 }, () => {
    it('refuses a CA-signed host that is not a configured member, and counts it', async () => {
      const t = await startThreeDaemons(logger, make, { members: MEMBERS });
      try {
        await t.forwarding('start');
        await assert.rejects(make('mallory').connect({ host: '127.0.0.1', port: t.hubPort, kind: 'backbone', expectedPeer: 'hub' }), {
          code: 'VNET_ERR_HANDSHAKE',
          message: /host mallory is not a member of this deployment/,
        });
        await waitFor(() => notMember(t) === 1, 'the refusal counted');
        assert.equal(t.hub.link('mallory'), undefined);
        await t.forwarding('after mallory');
      } finally {
        await t.close();
      }
    });

    it("closes a non-member's link when the controller's list arrives, and refuses it from then on", async () => {
      const t = await startThreeDaemons(logger, make);
      try {
        // No list yet: any host with the deployment's credentials is admitted (a daemon whose controller is away keeps working).
        const link = await make('mallory').connect({ host: '127.0.0.1', port: t.hubPort, kind: 'fast-path', expectedPeer: 'hub' });
        await waitFor(() => t.hub.link('mallory') !== undefined, "mallory's link adopted");
        t.hub.setDeploymentHosts(MEMBERS);
        await waitFor(() => link.closed, "mallory's link closed by the hub");
        assert.equal(t.hub.link('mallory'), undefined);
        await assert.rejects(make('mallory').connect({ host: '127.0.0.1', port: t.hubPort, kind: 'fast-path', expectedPeer: 'hub' }), { message: /not a member/ });
        await waitFor(() => notMember(t) === 1, 'the refusal counted');
        assert.deepEqual(t.hub.deploymentHosts, ['hA', 'hB', 'hub']);
        await t.forwarding('members kept their links');
      } finally {
        await t.close();
      }
    });

    it('a dialer refuses a listener that is not a member', async () => {
      // (On TLS the listener's side opens as it answers; the dialer's refusal closes it at once.)
      const rogue = await make('mallory').listen({ host: '127.0.0.1', port: 0 }, (link) => void link.close());
      try {
        await assert.rejects(make('hA', new HostMembership(MEMBERS)).connect({ host: '127.0.0.1', port: rogue.port, kind: 'fast-path' }), { code: 'VNET_ERR_NOT_MEMBER' });
      } finally {
        await rogue.close();
      }
    });
  });
}
