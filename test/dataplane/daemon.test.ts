/**
 * In-process: three daemons (a hub and two spokes) with memory ports, over
 * the in-memory transport, loopback TCP and loopback mutual TLS. The same
 * suite runs against each transport.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { BROADCAST_MAC, parseMac, type Mac } from '../../src/common/mac.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { initCa, issueHostCert, loadHostCredentials } from '../../src/pki/certs.ts';
import type { Transport } from '../../src/dataplane/transport.ts';
import { testFrame, seqOf } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 1500 };
const RECONNECT = { initialMs: 20, maxMs: 200 };

interface Vm {
  mac: Mac;
  port: MemoryPort;
  got: Buffer[];
}

function vm(name: string, mac: string): Vm {
  const port = new MemoryPort({ name, mac: parseMac(mac) });
  const v: Vm = { mac: port.mac, port, got: [] };
  port.onDeliver((f) => v.got.push(Buffer.from(f)));
  return v;
}

/** A TCP relay between a spoke and the hub whose connections the test can cut mid-stream. */
async function chaosProxy(target: { host: string; port: number }): Promise<{ port: number; cut(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut() {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      return n;
    },
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

type TransportFactory = (host: string) => Transport;

async function tlsFactory(dir: string, hosts: string[]): Promise<TransportFactory> {
  await initCa(dir);
  const creds = new Map<string, Awaited<ReturnType<typeof loadHostCredentials>>>();
  for (const host of hosts) {
    await issueHostCert(dir, host);
    creds.set(host, await loadHostCredentials(dir, host));
  }
  return (host) => new TlsTransport({ logger }, { localHost: host, ...creds.get(host)!, ...LINK });
}

function suite(name: string, makeFactory: (dir: string) => Promise<TransportFactory>, loopback: boolean): void {
  describe(`three daemons over ${name}`, { timeout: 60_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-daemon-test-'));
    let factory: TransportFactory;
    let hub: Daemon;
    let a: Daemon;
    let b: Daemon;
    let proxy: Awaited<ReturnType<typeof chaosProxy>> | undefined;
    const vm0 = vm('vm0', '02:00:00:00:00:10');
    const vm1 = vm('vm1', '02:00:00:00:00:11');
    const vm2 = vm('vm2', '02:00:00:00:00:12');
    const listen = { host: '127.0.0.1', port: 0 };
    const upLink = (d: Daemon, peer: string) => d.facts().links.find((l) => l.peer === peer && l.state === 'up');

    before(async () => {
      factory = await makeFactory(dir);
      hub = await Daemon.start({ logger, transport: factory('hub') }, { hostId: 'hub', role: 'hub', listen });
      const hubAddr = hub.listenAddress!;
      // Spoke A reaches the hub through a relay the test can cut (TCP and TLS only).
      proxy = loopback ? await chaosProxy(hubAddr) : undefined;
      const aHub = proxy ? { host: '127.0.0.1', port: proxy.port, id: 'hub' } : { ...hubAddr, id: 'hub' };
      a = await Daemon.start({ logger, transport: factory('hA') }, { hostId: 'hA', role: 'spoke', listen, hub: aHub, reconnect: RECONNECT });
      b = await Daemon.start({ logger, transport: factory('hB') }, { hostId: 'hB', role: 'spoke', listen, hub: { ...hubAddr, id: 'hub' }, reconnect: RECONNECT });
      hub.addPort(vm0.port);
      a.addPort(vm1.port);
      b.addPort(vm2.port);
      // The listener's end of a link comes up half a round trip before the dialer's: wait for both ends.
      await waitFor(
        () => hub.facts().links.filter((l) => l.state === 'up').length === 2 && upLink(a, 'hub') && upLink(b, 'hub'),
        'both spokes linked to the hub, on both ends',
      );
    });

    after(async () => {
      await Promise.all([a?.close(), b?.close(), hub?.close()]);
      await proxy?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const linkFrames = (d: Daemon, peer: string): number => {
      const l = d.facts().links.find((x) => x.peer === peer);
      return (l?.txFrames ?? 0) + (l?.rxFrames ?? 0);
    };

    it('floods a broadcast to every other VM exactly once, and delivers unicast through the hub', async () => {
      vm0.got.length = vm1.got.length = vm2.got.length = 0;
      vm1.port.transmit(testFrame(BROADCAST_MAC, vm1.mac, 1));
      await waitFor(() => vm0.got.length >= 1 && vm2.got.length >= 1, 'broadcast at vm0 and vm2');
      vm2.port.transmit(testFrame(vm1.mac, vm2.mac, 2)); // vm2 answers: everyone has now learned vm1 and vm2
      await waitFor(() => vm1.got.length >= 1, 'reply at vm1');
      const N = 2000;
      for (let i = 0; i < N; i++) vm1.port.transmit(testFrame(vm2.mac, vm1.mac, 100 + i, 60 + (i % 1400)));
      await waitFor(() => vm2.got.length >= N + 1, `${N} unicast frames at vm2`);
      assert.equal(vm1.got.length, 1, 'vm1 never got its own broadcast back');
      assert.equal(vm0.got.length, 1, 'vm0 got the broadcast once and none of the unicast stream');
      assert.deepEqual(vm2.got.slice(1).map(seqOf), Array.from({ length: N }, (_, i) => 100 + i), 'in order, none lost');
      assert.ok(linkFrames(hub, 'hA') >= N && linkFrames(hub, 'hB') >= N, 'the stream crossed the hub');
      const counted = a.counters.peek().entries.find((e) => e.src === vm1.mac && e.dst === vm2.mac);
      assert.equal(counted?.frames, N, 'traffic counted once, at the host where it entered the overlay');
      assert.equal(hub.counters.peek().entries.find((e) => e.src === vm1.mac), undefined, 'not counted again at the hub');
    });

    it('carries traffic over a fast-path link added at run time, bypassing the hub', async () => {
      const aAddr = a.listenAddress!;
      const bAddr = b.listenAddress!;
      a.applyFastPathLinks(1, [{ peer: 'hB', address: bAddr, reason: 'test' }]);
      b.applyFastPathLinks(1, [{ peer: 'hA', address: aAddr, reason: 'test' }]);
      await waitFor(() => upLink(a, 'hB') && upLink(b, 'hA'), 'fast-path link up on both ends');
      assert.equal(upLink(a, 'hB')!.kind, 'fast-path');
      a.applyRules(1, [{ id: 'fp', priority: 100, src: 'any', dst: '02:00:00:00:00:12', action: { link: 'hB' } }]);
      b.applyRules(1, [{ id: 'fp', priority: 100, src: 'any', dst: '02:00:00:00:00:11', action: { link: 'hA' } }]);
      const hubBefore = linkFrames(hub, 'hA') + linkFrames(hub, 'hB');
      vm2.got.length = 0;
      vm1.got.length = 0;
      for (let i = 0; i < 500; i++) vm1.port.transmit(testFrame(vm2.mac, vm1.mac, i));
      vm2.port.transmit(testFrame(vm1.mac, vm2.mac, 9999));
      await waitFor(() => vm2.got.length >= 500 && vm1.got.length >= 1, 'frames over the fast path');
      assert.deepEqual(vm2.got.map(seqOf), Array.from({ length: 500 }, (_, i) => i));
      assert.equal(linkFrames(hub, 'hA') + linkFrames(hub, 'hB'), hubBefore, 'no frame went through the hub');
      assert.ok(linkFrames(a, 'hB') >= 501);
      // Removing the link falls back to the backbone without losing the rule set's other traffic.
      a.applyFastPathLinks(2, []);
      b.applyFastPathLinks(2, []);
      await waitFor(() => !a.facts().links.some((l) => l.peer === 'hB') && !b.facts().links.some((l) => l.peer === 'hA'), 'fast-path link gone');
      vm2.got.length = 0;
      for (let i = 0; i < 100; i++) vm1.port.transmit(testFrame(vm2.mac, vm1.mac, i));
      await waitFor(() => vm2.got.length >= 100, 'frames back over the hub after the fast path went');
      a.applyRules(2, []);
      b.applyRules(2, []);
    });

    if (loopback) {
      it('re-establishes a link killed mid-stream, and traffic resumes', async () => {
        vm2.got.length = 0;
        let seq = 0;
        const sendSome = (n: number): void => {
          for (let i = 0; i < n; i++) vm1.port.transmit(testFrame(vm2.mac, vm1.mac, seq++));
        };
        sendSome(200);
        await waitFor(() => vm2.got.length >= 200, 'first part of the stream');
        const reconnectsBefore = a.facts().links.find((l) => l.peer === 'hub')!.reconnects;
        assert.ok(proxy!.cut() > 0, 'the relay had live connections to cut');
        sendSome(200); // mid-stream: these race the cut and may be lost with the connection
        await waitFor(() => a.facts().links.find((l) => l.peer === 'hub')!.reconnects > reconnectsBefore && upLink(a, 'hub'), 'spoke A redialled the hub');
        await waitFor(() => hub.facts().links.filter((l) => l.state === 'up').length === 2 && upLink(a, 'hub'), 'hub sees both spokes again');
        const mark = seq;
        const before = vm2.got.length;
        sendSome(300);
        await waitFor(() => vm2.got.filter((f) => seqOf(f) >= mark).length === 300, 'frames after the reconnect');
        assert.ok(vm2.got.length - before >= 300);
        const tail = vm2.got.filter((f) => seqOf(f) >= mark).map(seqOf);
        assert.deepEqual(tail, Array.from({ length: 300 }, (_, i) => mark + i), 'resumed in order');
      });
    }
  });
}

suite('the in-memory transport', async () => {
  const net = new MemoryNetwork();
  return (host) => new MemoryTransport({ logger }, { localHost: host, network: net, ...LINK });
}, false);

suite('loopback TCP', async () => (host) => new TcpTransport({ logger }, { localHost: host, ...LINK }), true);

suite('loopback mutual TLS', (dir) => tlsFactory(dir, ['hub', 'hA', 'hB']), true);

describe('TLS peer with a certificate from another CA', { timeout: 30_000 }, () => {
  it('is refused by the hub and never joins the overlay', async () => {
    const good = mkdtempSync(join(tmpdir(), 'vnet-ca-good-'));
    const evil = mkdtempSync(join(tmpdir(), 'vnet-ca-evil-'));
    try {
      const goodF = await tlsFactory(good, ['hub']);
      const evilF = await tlsFactory(evil, ['hX']);
      const hub = await Daemon.start({ logger, transport: goodF('hub') }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
      const intruder = await Daemon.start({ logger, transport: evilF('hX') }, { hostId: 'hX', role: 'spoke', hub: { ...hub.listenAddress!, id: 'hub' }, reconnect: RECONNECT });
      try {
        await waitFor(() => (intruder.facts().links.find((l) => l.peer === 'hub')?.reconnects ?? 0) >= 2, 'the intruder retried after being refused');
        assert.equal(hub.facts().links.length, 0, 'the hub has no link to the intruder');
        assert.equal(intruder.facts().links[0]!.state, 'connecting');
        assert.ok(intruder.stats.linkFailures === 0, 'no link was ever up to fail');
      } finally {
        await intruder.close();
        await hub.close();
      }
    } finally {
      rmSync(good, { recursive: true, force: true });
      rmSync(evil, { recursive: true, force: true });
    }
  });
});
