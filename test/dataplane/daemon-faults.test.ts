/**
 * Bad input and faults at the daemon: garbage, a hello with a wrong version,
 * a peer that stalls, bad bytes on an established link, a port whose device
 * fails. Each is counted and confined to its link or port; the daemon keeps
 * forwarding everything else.
 *
 * The three daemons' time is a manual clock: a link's keepalives, dead timer
 * and handshake deadline run only when the test advances it, with traffic on
 * the spokes' links at every step. So a starved test process only delays the
 * test; it cannot age a live link past its dead time (it did, at nice 19
 * beside three CPU hogs: the links closed and the frames sent meanwhile were
 * lost).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { silentLogger } from '../../src/common/logger.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { BROADCAST_MAC, parseMac } from '../../src/common/mac.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { encodeFrame } from '../../src/dataplane/frame-codec.ts';
import { encodeHello } from '../../src/dataplane/wire-messages.ts';
import { TapError } from '../../src/dataplane/errors.ts';
import { testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 600, handshakeTimeoutMs: 600 };

/** A raw TCP peer; everything it receives is collected (and so consumed, letting 'close' fire). */
function rawConnect(port: number): Promise<Socket & { received: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const s = Object.assign(connect(port, '127.0.0.1', () => resolve(s)), { received: [] as Buffer[] });
    s.on('data', (d: Buffer) => s.received.push(d));
    s.on('error', reject);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

describe('daemon under bad input and faults', { timeout: 30_000 }, () => {
  let hub: Daemon;
  let a: Daemon;
  let b: Daemon;
  const clock = new ManualClock();
  const mk = (name: string, mac: string) => {
    const port = new MemoryPort({ name, mac: parseMac(mac) });
    const got: Buffer[] = [];
    port.onDeliver((f) => got.push(f));
    return { port, got };
  };
  const vm1 = mk('vm1', '02:00:00:00:00:21');
  const vm2 = mk('vm2', '02:00:00:00:00:22');
  const vm3 = mk('vm3', '02:00:00:00:00:23');

  /** vm1 → vm2 keeps flowing through the hub. */
  async function stillForwarding(what: string): Promise<void> {
    const before = vm2.got.length;
    for (let i = 0; i < 50; i++) vm1.port.transmit(testFrame(vm2.port.mac, vm1.port.mac, i));
    await waitFor(() => vm2.got.length >= before + 50, `forwarding after ${what}`);
  }

  /**
   * Move the daemons' time on by `ms`, in steps of a quarter of the link's
   * dead time, a frame each way between vm1 and vm2 (over both spokes' links)
   * delivered at every step: the spokes' links stay alive, a silent one dies
   * on time. Stops early once `until` holds.
   */
  async function advanceWithTraffic(ms: number, until: () => boolean): Promise<void> {
    const step = LINK.deadMs / 4;
    for (let done = 0; done < ms && !until(); done += step) {
      clock.advance(step);
      const [to2, to1] = [vm2.got.length, vm1.got.length];
      vm1.port.transmit(testFrame(vm2.port.mac, vm1.port.mac, done));
      vm2.port.transmit(testFrame(vm1.port.mac, vm2.port.mac, done));
      await waitFor(() => vm2.got.length > to2 && vm1.got.length > to1, `a frame each way at ${done + step} ms of the daemons' time`);
    }
  }

  before(async () => {
    const t = (id: string) => new TcpTransport({ logger, clock }, { localHost: id, ...LINK });
    hub = await Daemon.start({ logger, clock, transport: t('hub') }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
    const hubAddr = { ...hub.listenAddress!, id: 'hub' };
    a = await Daemon.start({ logger, clock, transport: t('hA') }, { hostId: 'hA', role: 'spoke', hub: hubAddr, reconnect: { initialMs: 20, maxMs: 100 } });
    b = await Daemon.start({ logger, clock, transport: t('hB') }, { hostId: 'hB', role: 'spoke', hub: hubAddr, reconnect: { initialMs: 20, maxMs: 100 } });
    a.addPort(vm1.port);
    b.addPort(vm2.port);
    b.addPort(vm3.port);
    const up = (d: Daemon): boolean => d.facts().links.some((l) => l.peer === 'hub' && l.state === 'up');
    await waitFor(() => hub.facts().links.filter((l) => l.state === 'up').length === 2 && up(a) && up(b), 'spokes up on both ends');
    vm2.port.transmit(testFrame(BROADCAST_MAC, vm2.port.mac, 0));
    await stillForwarding('start');
  });

  after(async () => {
    await Promise.all([a.close(), b.close(), hub.close()]);
  });

  it('refuses a connection that sends garbage instead of a hello, and keeps forwarding', async () => {
    const refused = hub.refusedConnections;
    const s = await rawConnect(hub.listenAddress!.port);
    s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await closed(s);
    await waitFor(() => hub.refusedConnections > refused, 'refusal counted');
    await stillForwarding('garbage');
  });

  it('refuses a hello with a wrong protocol version', async () => {
    const refused = hub.refusedConnections;
    const s = await rawConnect(hub.listenAddress!.port);
    const hello = encodeHello({ hostId: 'hZ', kind: 'backbone', role: 'dialer', version: 99 });
    s.write(hello);
    await closed(s);
    await waitFor(() => hub.refusedConnections > refused, 'refusal counted');
    assert.ok(Buffer.concat(s.received).toString('latin1').includes('version'), 'the peer is told why (goodbye naming the version)');
    assert.equal(hub.facts().links.some((l) => l.peer === 'hZ'), false);
    await stillForwarding('wrong version');
  });

  it('drops a peer that says hello and then stalls, without disturbing the others', async () => {
    const failures = hub.stats.linkFailures;
    const s = await rawConnect(hub.listenAddress!.port);
    s.write(encodeHello({ hostId: 'hStall', kind: 'backbone', role: 'dialer' }));
    await waitFor(() => hub.facts().links.some((l) => l.peer === 'hStall'), 'stalling peer accepted');
    await advanceWithTraffic(4 * LINK.deadMs, () => s.destroyed); // the hub's dead-peer timer ends it
    await waitFor(() => s.destroyed, 'the stalling peer closed by the hub once its dead time passed');
    await waitFor(() => hub.stats.linkFailuresByCode.VNET_ERR_LINK_TIMEOUT !== undefined, 'timeout counted');
    assert.ok(hub.stats.linkFailures > failures);
    assert.equal(hub.facts().links.some((l) => l.peer === 'hStall'), false);
    await stillForwarding('stall');
  });

  it('closes only the link that carries bad bytes after a good start', async () => {
    const s = await rawConnect(hub.listenAddress!.port);
    s.write(encodeHello({ hostId: 'hBad', kind: 'backbone', role: 'dialer' }));
    await waitFor(() => hub.facts().links.some((l) => l.peer === 'hBad' && l.state === 'up'), 'bad peer accepted');
    s.write(encodeFrame({ data: testFrame(vm2.port.mac, parseMac('02:00:00:00:00:99'), 1), offload: undefined }));
    s.write(Buffer.from([0xee, 0xff, 0xff, 0xff, 1, 2, 3])); // unknown type, absurd length
    await closed(s);
    await waitFor(() => hub.stats.decodeErrors > 0, 'decode error counted');
    assert.equal(hub.facts().links.filter((l) => l.state === 'up').length, 2, 'both real spokes still up');
    await stillForwarding('bad bytes');
  });

  it('removes a port whose device fails and keeps serving the host\'s other ports', async () => {
    vm3.port.fail(new TapError('device vm3 disappeared', 19));
    await waitFor(() => !b.facts().ports.some((p) => p.name === 'vm3'), 'failed port removed');
    assert.equal(b.stats.portFailures, 1);
    await stillForwarding('port failure');
  });
});
