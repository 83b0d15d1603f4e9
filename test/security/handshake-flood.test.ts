/**
 * Connection slots on the tunnel listener (issue 11): idle connections that
 * never send a hello (TCP) or never finish the TLS handshake (TLS), hundreds
 * of them and renewed as they are dropped, must neither keep a real host
 * out — a spoke restarted during the flood links up again and carries
 * traffic — nor hold file descriptors: every one is closed at the handshake
 * deadline or evicted, the drops are counted by reason, and the process's
 * descriptor count returns to its baseline. The flood comes from other
 * loopback addresses (127.0.0.2–9) than the real hosts (127.0.0.1).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { LinkKeyAuthenticator } from '../../src/dataplane/link-auth.ts';
import type { HostMembership } from '../../src/dataplane/link-membership.ts';
import type { Transport } from '../../src/dataplane/transport.ts';
import { startThreeDaemons, type ThreeDaemons } from './fixtures/three-daemons.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
/**
 * The handshake deadline small, so the test sees it pass; the default caps: a 300-connection flood from 8
 * addresses overflows the 16 per address (evicting each address's oldest) but stays under the 256 in all, where
 * a random pending connection would be evicted (common/pending-slots.ts; its tests cover that).
 */
const LINK = { keepaliveMs: 100, deadMs: 3000, handshakeTimeoutMs: 1000, maxPendingPerSource: 16 };
const FLOOD = 300;
/** Upper bound on connections one flood opens in all (it renews dropped ones until stopped). */
const MAX_OPENED = 20_000;

const fdCount = (): number => readdirSync('/proc/self/fd').length;

/** `n` idle connections from 127.0.0.2–9 that send nothing; with `renew`, each one dropped is replaced until `stop`. */
function flood(port: number, n: number, renew: boolean): { open: () => number; opened: () => number; stop: () => void } {
  const live = new Set<Socket>();
  let opened = 0;
  let stopped = false;
  const one = (i: number): void => {
    if (stopped || opened >= MAX_OPENED) return;
    opened++;
    const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 8)}` });
    live.add(s);
    s.on('error', () => {});
    s.on('close', () => {
      live.delete(s);
      if (renew) setImmediate(() => one(i));
    });
  };
  for (let i = 0; i < n; i++) one(i);
  return {
    open: () => live.size,
    opened: () => opened,
    stop: () => {
      stopped = true;
    },
  };
}

function slotDrops(t: ThreeDaemons): number {
  const by = t.hub.listenerStats?.refusedByCode ?? {};
  return (by['deadline'] ?? 0) + (by['evicted-source'] ?? 0) + (by['evicted-total'] ?? 0);
}

async function survivesFlood(make: (id: string, m: HostMembership) => Transport, renew: boolean): Promise<void> {
  const t = await startThreeDaemons(logger, make);
  try {
    await t.forwarding('start');
    const baseline = fdCount();
    const f = flood(t.hubPort, FLOOD, renew);
    try {
      await waitFor(() => f.open() >= FLOOD / 2, 'the flood connected');
      await t.restartA();
      await t.forwarding('a spoke restarted during the flood');
      await waitFor(() => slotDrops(t) >= FLOOD, 'flood connections dropped at the deadline or evicted', 30_000);
    } finally {
      f.stop();
    }
    await waitFor(() => f.open() === 0, 'every flood connection closed by the hub', 30_000);
    await waitFor(() => t.hub.listenerStats?.pending === 0, 'no connection left pending');
    const by = t.hub.listenerStats!.refusedByCode;
    assert.ok((by['deadline'] ?? 0) > 0, `some closed at the deadline: ${JSON.stringify(by)}`);
    assert.ok((by['evicted-source'] ?? 0) > 0, `some evicted by their address's cap: ${JSON.stringify(by)}`);
    await waitFor(() => fdCount() <= baseline, `file descriptors back to the baseline of ${baseline}`, 15_000);
    await t.forwarding('after the flood');
  } finally {
    await t.close();
  }
}

describe('handshake floods on the tunnel listener', { timeout: 120_000 }, () => {
  it('TCP: 300 idle pre-hello connections renewed as dropped; a restarted spoke gets back in and carries traffic; all closed, fds back to baseline', async () => {
    const key = randomBytes(32);
    await survivesFlood((id, membership) => new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: new LinkKeyAuthenticator(key), membership }), true);
  });

  it('TLS: 300 connections that never start the TLS handshake are closed at the deadline while a restarted spoke gets back in; fds back to baseline', async () => {
    const ca: PemPair = await createCa();
    const certs = new Map<string, PemPair>();
    for (const h of ['hub', 'hA', 'hB']) certs.set(h, await issueHostCertificate(ca, h));
    await survivesFlood((id, membership) => new TlsTransport({ logger }, { localHost: id, ...LINK, ca: ca.cert, ...certs.get(id)!, membership }), false);
  });
});
