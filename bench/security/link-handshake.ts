/**
 * What authenticating tunnel links costs, and what a flood of idle
 * connections costs a real host, on loopback in one process:
 *
 *   handshake   N sequential link handshakes (connect, hello, proofs) per
 *               method: unauthenticated TCP (loopback only), TCP with the
 *               deployment link key (HMAC), TCP with host certificates
 *               (ECDSA P-256 signatures), mutual TLS 1.3 — mean, p50, p99.
 *   flood       the same dial while 300 idle connections (from 127.0.0.2–9,
 *               renewed as they are dropped) hold the listener's slots:
 *               p50, p99, max over N dials, and the slots dropped meanwhile.
 *
 *   node --import tsx bench/security/link-handshake.ts [N, default 200]
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../../src/common/logger.ts';
import { createCa, issueHostCertificate } from '../../src/pki/certs.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { CertificateAuthenticator, LinkKeyAuthenticator } from '../../src/dataplane/link-auth.ts';
import type { Transport, TransportListener } from '../../src/dataplane/transport.ts';

const N = Number(process.argv[2] ?? 200);
const logger = silentLogger();
const LINK = { handshakeTimeoutMs: 5000 };

const ca = await createCa();
const certs = { hub: await issueHostCertificate(ca, 'hub'), a: await issueHostCertificate(ca, 'a') };
const key = randomBytes(32);
const methods: Array<[string, (id: 'hub' | 'a') => Transport]> = [
  ['tcp, none (loopback)', (id) => new TcpTransport({ logger }, { localHost: id, ...LINK })],
  ['tcp, link key', (id) => new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: new LinkKeyAuthenticator(key) })],
  ['tcp, host certificate', (id) => new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: new CertificateAuthenticator({ ca: ca.cert, ...certs[id] }) })],
  ['tls', (id) => new TlsTransport({ logger }, { localHost: id, ...LINK, ca: ca.cert, ...certs[id] })],
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function dials(dialer: Transport, port: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const link = await dialer.connect({ host: '127.0.0.1', port, kind: 'fast-path', expectedPeer: 'hub' });
    ms.push(performance.now() - t0);
    await link.close();
  }
  return ms.sort((x, y) => x - y);
}

/** 300 idle connections from 127.0.0.2–9, each replaced when dropped, until stopped. */
function flood(port: number): () => void {
  let stopped = false;
  const one = (i: number): void => {
    if (stopped) return;
    const s: Socket = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 8)}` });
    s.on('error', () => {});
    s.on('close', () => setImmediate(() => one(i)));
  };
  for (let i = 0; i < 300; i++) one(i);
  return () => {
    stopped = true;
  };
}

const rows: string[] = [];
const fmt = (x: number): string => x.toFixed(2).padStart(8);
for (const [name, make] of methods) {
  let listener: TransportListener | undefined;
  const inbound: Array<{ close(): Promise<void> }> = [];
  try {
    listener = await make('hub').listen({ host: '127.0.0.1', port: 0 }, (l) => inbound.push(l));
    const quiet = await dials(make('a'), listener.port);
    const mean = quiet.reduce((s, x) => s + x, 0) / quiet.length;
    const stop = flood(listener.port);
    await new Promise((r) => setTimeout(r, 200));
    const droppedBefore = Object.entries(listener.stats.refusedByCode).filter(([k]) => !k.startsWith('VNET_')).reduce((s, [, v]) => s + v, 0);
    const busy = await dials(make('a'), listener.port);
    stop();
    const dropped = Object.entries(listener.stats.refusedByCode).filter(([k]) => !k.startsWith('VNET_')).reduce((s, [, v]) => s + v, 0) - droppedBefore;
    rows.push(`${name.padEnd(24)}${fmt(mean)}${fmt(percentile(quiet, 50))}${fmt(percentile(quiet, 99))}   |${fmt(percentile(busy, 50))}${fmt(percentile(busy, 99))}${fmt(busy[busy.length - 1]!)}${String(dropped).padStart(10)}`);
  } finally {
    for (const l of inbound) await l.close();
    await listener?.close();
  }
}
console.log(`link handshakes on loopback, ${N} dials each (ms)`);
console.log(`${'method'.padEnd(24)}${'mean'.padStart(8)}${'p50'.padStart(8)}${'p99'.padStart(8)}   |${'fl. p50'.padStart(8)}${'p99'.padStart(8)}${'max'.padStart(8)}${'dropped'.padStart(10)}`);
for (const r of rows) console.log(r);
process.exit(0);
