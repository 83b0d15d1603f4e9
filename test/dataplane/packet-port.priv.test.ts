/**
 * PacketPort against the real kernel (root). Each test makes a namespace
 * that plays the VM: one end of a veth pair in it (the VM's MAC and address,
 * IPv6 off so nothing but the test's traffic crosses), the other end in the
 * test's own namespace, where the port attaches an AF_PACKET socket to it.
 * FakePeer answers the VM's ARP and pings through the port.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { silentLogger } from '../../src/common/logger.ts';
import { plainFrame, type Frame } from '../../src/common/frame.ts';
import { formatMac, srcMacOf } from '../../src/common/mac.ts';
import { PacketInterfaceNotFoundError, PacketPortError } from '../../src/dataplane/errors.ts';
import { PacketPort, type PacketPortOptions } from '../../src/dataplane/packet-port.ts';
import { FakePeer } from '../helpers/fake-peer.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { generateAdminToken } from '../../src/dataplane/admin-access.ts';
import { startAdminServer } from '../../src/dataplane/admin-server.ts';
import { createDaemonRegistry } from '../../src/dataplane/daemon-metrics.ts';
import { formatPacketDrops } from '../../src/cli/status-format.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { requireTools, useNetns, waitFor, type NetnsHarness } from '../helpers/netns.ts';
import { ipv4Bytes, udpFrame } from '../helpers/packets.ts';

requireTools(['ip', 'ping']);

const VM_MAC = 0x02_00_00_98_00_01;
const PEER_MAC = 0x02_00_00_98_00_02;
const VM_IP = '10.98.0.1';
const PEER_IP = '10.98.0.2';
const ADDON = new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname;

interface Setup {
  h: NetnsHarness;
  ns: string;
  /** The VM's end, in `ns`. */
  vmDev: string;
  /** The end the port attaches to, in the test's namespace. */
  hostDev: string;
  port: PacketPort;
  peer: FakePeer;
  /** Copies of every frame the port handed up. */
  seen: Buffer[];
}

async function setup(t: TestContext, opts: { mtu?: number; linkMtu?: number; lock?: PacketPortOptions['lock']; startPort?: boolean; rcvBufBytes?: number } = {}): Promise<Setup> {
  const h = await useNetns(t);
  const ns = await h.namespace();
  await h.exec(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  const hostDev = h.linkName();
  const vmDev = h.linkName();
  await h.exec(undefined, ['ip', 'link', 'add', hostDev, 'type', 'veth', 'peer', 'name', vmDev]);
  h.trackHostLink(hostDev);
  writeFileSync(`/proc/sys/net/ipv6/conf/${hostDev}/disable_ipv6`, '1');
  await h.moveLink(vmDev, ns);
  await h.exec(ns, ['ip', 'link', 'set', 'dev', vmDev, 'address', formatMac(VM_MAC)]);
  if (opts.linkMtu !== undefined) {
    await h.exec(undefined, ['ip', 'link', 'set', 'dev', hostDev, 'mtu', String(opts.linkMtu)]);
    await h.exec(ns, ['ip', 'link', 'set', 'dev', vmDev, 'mtu', String(opts.linkMtu)]);
  }
  await h.addAddress(ns, vmDev, `${VM_IP}/24`);
  await h.linkUp(undefined, hostDev);
  await h.linkUp(ns, vmDev);
  const port = PacketPort.open({ name: hostDev, mac: VM_MAC, mtu: opts.mtu ?? 1500, lock: opts.lock ?? { ips: [VM_IP] }, rcvBufBytes: opts.rcvBufBytes, logger: silentLogger() });
  t.after(() => port.close());
  const peer = new FakePeer({ mac: PEER_MAC, ip: PEER_IP, send: (b) => port.send(plainFrame(b)) });
  const seen: Buffer[] = [];
  // Not started here when a daemon takes the port (it starts it).
  if (opts.startPort !== false) port.start((frames: readonly Frame[]) => {
    for (const f of frames) {
      seen.push(Buffer.from(f.data));
      peer.handle(f);
    }
  });
  return { h, ns, vmDev, hostDev, port, peer, seen };
}

/** The VM side's interface counters. */
async function vmCounters(s: Setup): Promise<{ rx: number; tx: number }> {
  const r = await s.h.exec(s.ns, ['ip', '-s', '-j', 'link', 'show', 'dev', s.vmDev]);
  const link = (JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>)[0]!;
  return { rx: link.stats64.rx.packets, tx: link.stats64.tx.packets };
}

/** Sends raw frames from inside the VM's namespace (its own packet socket, through the addon: the kernel path a guest's frames take). */
async function sendFromVm(s: Setup, frames: Buffer[]): Promise<void> {
  const hex = JSON.stringify(frames.map((f) => f.toString('hex')));
  const script = `const { PacketHandle } = require(${JSON.stringify(ADDON)});
    const h = new PacketHandle({ ifname: ${JSON.stringify(s.vmDev)}, slot: 2048 });
    for (const f of ${hex}) { const n = h.write(Buffer.from(f, 'hex')); if (n < 0) { console.error('write ' + n); process.exit(1); } }
    h.close();`;
  const r = await s.h.exec(s.ns, [process.execPath, '-e', script]);
  assert.equal(r.code, 0, r.stderr);
}

test('frames go both ways through a packet port on a veth: the VM pings the peer behind the port, counters exact', async (t) => {
  const s = await setup(t);
  const before = await vmCounters(s);
  const r = await s.h.exec(s.ns, ['ping', '-n', '-c', '5', '-i', '0.2', '-W', '2', PEER_IP]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, / 0% packet loss/);
  assert.equal(s.peer.counts.echoRequests, 5);
  assert.ok(s.peer.counts.arpRequests >= 1);
  const after = await vmCounters(s);
  const st = s.port.stats;
  assert.equal(st.rxFrames, s.seen.length, 'every frame handed up is counted once');
  assert.equal(st.rxBytes, s.seen.reduce((n, f) => n + f.length, 0));
  assert.equal(st.rxFrames, after.tx - before.tx, 'every frame the VM sent was read, no more');
  assert.equal(st.txFrames, after.rx - before.rx, 'every frame sent through the port reached the VM, no more');
  assert.ok(st.txFrames >= 6, 'ARP reply and five echo replies');
  assert.equal(st.txDropped, 0);
  assert.equal(st.errors, 0);
  assert.ok(s.seen.every((f) => srcMacOf(f) === VM_MAC), 'only the VM\'s frames: none of the port\'s own writes came back');
  assert.equal(s.port.packetStats.kernelDrops, 0);
});

test('the port never reads back what it sends, even frames from a source it would admit', async (t) => {
  // Unlocked: a frame of the port's own coming back would be handed up, not refused.
  const s = await setup(t, { lock: false });
  const before = await vmCounters(s);
  const n = 50;
  const sent = Array.from({ length: n }, (_, i) => udpFrame(VM_MAC, VM_MAC, ipv4Bytes(PEER_IP), ipv4Bytes(VM_IP), 9, 9, Buffer.from(`own-${i}`)));
  for (const f of sent) s.port.send(plainFrame(f));
  await waitFor(async () => (await vmCounters(s)).rx - before.rx >= n, 'the VM received the frames', 10_000);
  // A marker from the VM: once it is read, anything the port sent before it would have been read too.
  await sendFromVm(s, [udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 7, 7, Buffer.from('marker'))]);
  await waitFor(() => s.seen.some((f) => f.includes('marker')), 'the VM\'s marker read', 10_000);
  // The VM answers the UDP with ICMP port unreachable, after an ARP the peer answers through the port.
  assert.equal(s.port.stats.txFrames, n + s.peer.counts.arpRequests + s.peer.counts.echoRequests);
  // (The VM's ICMP errors quote them; a frame read back would be one of them, byte for byte.)
  assert.equal(s.seen.filter((f) => sent.some((x) => x.equals(f))).length, 0, 'none of the port\'s writes read back');
  assert.equal(s.port.stats.rxFrames, s.seen.length);
  const p = s.port.packetStats;
  assert.ok(p.outgoingSkipped === 0 || p.outgoingSkipped >= n, `skipped by the kernel (PACKET_IGNORE_OUTGOING) or per frame: ${JSON.stringify(p)}`);
});

test('the address lock drops a spoofed source MAC and a spoofed source IP from the VM, counted, and admits the VM\'s own', async (t) => {
  const s = await setup(t);
  const good = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('good'));
  const badMac = udpFrame(PEER_MAC, 0x02_00_00_98_00_66, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('bad-mac'));
  const badIp = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes('10.98.0.77'), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('bad-ip'));
  await sendFromVm(s, [badMac, badIp, good]);
  await waitFor(() => s.seen.some((f) => f.includes('good')), 'the VM\'s own frame handed up', 10_000);
  const p = s.port.packetStats;
  assert.equal(p.spoofedMac, 1);
  assert.equal(p.spoofedIp, 1);
  assert.equal(s.seen.filter((f) => f.includes('bad-')).length, 0, 'neither spoofed frame reached the daemon');
  assert.equal(s.port.stats.rxFrames, s.seen.length, 'refused frames are not counted as received');
});

test('a daemon reports a packet port\'s drops, as the port counts them, in its facts, GET /ports, its metrics and vnet status', async (t) => {
  const s = await setup(t, { mtu: 1500, linkMtu: 2000, startPort: false });
  const daemon = await Daemon.start({ logger: silentLogger(), transport: new MemoryTransport({ logger: silentLogger() }, { localHost: 'h1', network: new MemoryNetwork() }) }, { hostId: 'h1', role: 'hub' });
  t.after(() => daemon.close());
  daemon.addPort(s.port, VM_IP);
  const badMac = udpFrame(PEER_MAC, 0x02_00_00_98_00_66, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('bad-mac'));
  const badIp = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes('10.98.0.77'), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('bad-ip'));
  const big = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.alloc(1800, 0x61));
  const good = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('good'));
  await sendFromVm(s, [badMac, badMac, badIp, big, good]);
  await waitFor(() => daemon.facts().ports[0]!.rxFrames >= 1, 'the VM\'s own frame received', 10_000);
  const want = { runts: 0, tooLarge: 1, spoofedMac: 2, spoofedIp: 1, malformed: 0, kernelDrops: 0 };
  assert.deepEqual(daemon.facts().ports[0]!.packet, want);
  const token = generateAdminToken();
  const registry = createDaemonRegistry({ daemon });
  const admin = await startAdminServer({ logger: silentLogger(), daemon, metrics: registry }, { host: '127.0.0.1', port: 0, token });
  t.after(() => admin.close());
  const ports = await adminRequest({ url: admin.url, token }, 'GET', '/ports');
  assert.deepEqual((ports.json as Array<{ packet?: unknown }>)[0]!.packet, want);
  const metrics = await registry.metrics();
  for (const [reason, n] of [['spoofed-mac', 2], ['spoofed-ip', 1], ['too-large', 1], ['kernel', 0]] as const) {
    assert.match(metrics, new RegExp(`^vnet_daemon_packet_port_dropped_frames_total\\{port="${s.hostDev}",reason="${reason}",host="h1"\\} ${n}$`, 'm'));
  }
  assert.equal(formatPacketDrops(s.hostDev, daemon.facts().ports[0]!.packet!), `${s.hostDev} (packet) dropped: spoofed-mac 2, spoofed-ip 1, too-large 1, runts 0, malformed 0, kernel 0`);
});

test('frames the kernel could not queue for the port\'s socket (nobody reading, buffer full) are counted as kernel drops', async (t) => {
  const s = await setup(t, { startPort: false, rcvBufBytes: 4096 });
  const n = 200;
  await sendFromVm(s, Array.from({ length: n }, (_, i) => udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.alloc(64, i & 0xff))));
  await waitFor(() => s.port.packetStats.kernelDrops > 0, 'kernel drops counted', 10_000);
  const drops = s.port.packetStats.kernelDrops;
  assert.ok(drops <= n, `${drops} drops of ${n} frames`);
  assert.equal(s.port.packetStats.kernelDrops, drops, 'the count is kept across reads (the kernel resets its own on each)');
});

test('a frame over the port\'s MTU is dropped as too large and counted; a frame that fits passes', async (t) => {
  // The link carries 2000-byte packets; the port takes 1500 (+ 18).
  const s = await setup(t, { mtu: 1500, linkMtu: 2000 });
  const big = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.alloc(1800, 0x61));
  const fits = udpFrame(PEER_MAC, VM_MAC, ipv4Bytes(VM_IP), ipv4Bytes(PEER_IP), 5, 5, Buffer.from('fits'));
  await sendFromVm(s, [big, fits]);
  await waitFor(() => s.seen.some((f) => f.includes('fits')), 'the frame that fits handed up', 10_000);
  assert.equal(s.port.packetStats.tooLarge, 1);
  assert.equal(s.port.stats.errors, 1);
  assert.ok(s.seen.every((f) => f.length <= 1518));
});

test('the interface deleted under the port: one PacketPortError to the failure handler; sends are counted drops', async (t) => {
  const s = await setup(t);
  const failed = new Promise<Error>((resolve) => s.port.onFailure(resolve));
  await s.h.exec(undefined, ['ip', 'link', 'del', 'dev', s.hostDev]);
  const err = await failed;
  assert.ok(err instanceof PacketPortError, String(err));
  s.port.send(plainFrame(udpFrame(VM_MAC, PEER_MAC, ipv4Bytes(PEER_IP), ipv4Bytes(VM_IP), 1, 1, Buffer.alloc(4))));
  assert.equal(s.port.stats.txDropped, 1);
});

test('opening a packet port on an interface that does not exist is a PacketInterfaceNotFoundError naming it', () => {
  assert.throws(() => PacketPort.open({ name: 'vnt-nosuchif0', mac: VM_MAC, mtu: 1500, logger: silentLogger() }), (err: unknown) => err instanceof PacketInterfaceNotFoundError && err.message.includes('vnt-nosuchif0'));
  assert.throws(() => PacketPort.open({ name: 'a/b', mac: VM_MAC, mtu: 1500, logger: silentLogger() }), PacketPortError);
});
