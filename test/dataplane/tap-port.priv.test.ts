/**
 * TapPort against the real kernel (root). Each test makes its own namespace
 * (test/helpers/netns.ts), creates a TAP device from Node in the host
 * namespace, moves it into the namespace (as the daemon will move it into a
 * VM's), and plays the far side in Node with FakePeer.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { silentLogger } from '../../src/common/logger.ts';
import { TapError } from '../../src/dataplane/errors.ts';
import { plainFrame, type Frame } from '../../src/common/frame.ts';
import { formatMac } from '../../src/common/mac.ts';
import { segmentFrame } from '../../src/dataplane/offload.ts';
import { TapDevice, TUN_F } from '../../src/dataplane/tap-device.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { decodeVirtioNetHdr, encodeVirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP_L4 } from '../../src/dataplane/virtio-net-hdr.ts';
import { FakePeer } from '../helpers/fake-peer.ts';
import { requireTools, run, useNetns, waitFor, type NetnsHarness } from '../helpers/netns.ts';
import { ethHeader, ipv4Bytes, ipv4Header, ipv4PseudoHeaderSum, verifyChecksums } from '../helpers/packets.ts';

requireTools(['ip', 'ping', 'ethtool']);

const VM_MAC = 0x02_00_00_99_00_01;
const PEER_MAC = 0x02_00_00_99_00_02;
const VM_IP = '10.99.0.1';
const PEER_IP = '10.99.0.2';
const MTU = 1500;

interface Setup {
  h: NetnsHarness;
  ns: string;
  port: TapPort;
  peer: FakePeer;
  batches: number[];
  /** Copies of every frame that carried offload metadata. */
  offloaded: Frame[];
}

/** A TAP port made in the host namespace, moved into a fresh namespace, addressed and up; FakePeer answers. */
async function setup(t: TestContext, vnetHdr: boolean): Promise<Setup> {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const name = h.linkName();
  const port = TapPort.open({ name, mac: VM_MAC, mtu: MTU, vnetHdr, logger: silentLogger() });
  t.after(() => port.close());
  h.trackHostLink(name);
  await h.moveLink(name, ns);
  await h.addAddress(ns, name, `${VM_IP}/24`);
  await h.linkUp(ns, name);
  const peer = new FakePeer({ mac: PEER_MAC, ip: PEER_IP, send: (b) => port.send(plainFrame(b)), tcpPort: 5201 });
  const batches: number[] = [];
  const offloaded: Frame[] = [];
  port.start((frames) => {
    batches.push(frames.length);
    for (const f of frames) {
      if (f.offload !== undefined) offloaded.push({ data: Buffer.from(f.data), offload: Buffer.from(f.offload) });
      peer.handle(f);
    }
  });
  return { h, ns, port, peer, batches, offloaded };
}

/** Runs a Node script inside the namespace. */
function nodeIn(s: Setup, script: string): ReturnType<NetnsHarness['spawn']> {
  return s.h.spawn(s.ns, [process.execPath, '-e', script]);
}

for (const vnetHdr of [false, true]) {
  const mode = vnetHdr ? 'with vnet_hdr' : 'without vnet_hdr';

  test(`opens a TAP device ${mode} with the requested MAC and MTU`, async (t) => {
    const h = await useNetns(t);
    const name = h.linkName();
    const port = TapPort.open({ name, mac: VM_MAC, mtu: 1400, vnetHdr, logger: silentLogger() });
    t.after(() => port.close());
    h.trackHostLink(name);
    const link = await h.link(undefined, name);
    assert.ok(link !== undefined, 'device exists');
    assert.equal(link.address, formatMac(VM_MAC));
    assert.equal(link.mtu, 1400);
    assert.equal(link.linkinfo?.info_data?.type, 'tap');
    assert.equal(link.linkinfo?.info_data?.pi, false);
    assert.equal(link.linkinfo?.info_data?.vnet_hdr, vnetHdr);
    assert.ok(link.flags?.includes('UP'));
    assert.equal(port.kind, 'tap');
    assert.equal(port.acceptsOffload, vnetHdr);
    const features = (await run(['ethtool', '-k', name])).stdout;
    if (vnetHdr) {
      const want = TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6;
      assert.equal(port.offloadFlags & want, want);
      assert.match(features, /^tcp-segmentation-offload: on/m);
    } else {
      assert.equal(port.offloadFlags, 0);
      assert.match(features, /^tcp-segmentation-offload: off/m);
    }
    await port.close();
    assert.equal(await h.link(undefined, name), undefined, 'a non-persistent device disappears on close');
  });

  test(`ping through a TAP port ${mode}: the test answers ARP and ICMP echo (fd still valid after the move into a namespace)`, async (t) => {
    const s = await setup(t, vnetHdr);
    const r = await s.h.exec(s.ns, ['ping', '-c', '3', '-W', '1', '-i', '0.2', PEER_IP], { timeoutMs: 15_000, allowFailure: true });
    assert.equal(r.code, 0, `ping failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /3 packets transmitted, 3 received/);
    assert.ok(s.peer.counts.arpRequests >= 1, 'the kernel asked for the peer by ARP');
    assert.ok(s.peer.counts.echoRequests >= 3, 'echo requests read from the device');
    assert.ok(s.port.stats.txFrames >= 4, 'ARP reply and echo replies written');
    assert.equal(s.port.stats.txDropped, 0);
  });

  test(`a TCP stream from the namespace ${mode}: ${vnetHdr ? 'TSO super-frames larger than the MTU, segmented in software into valid frames' : 'only MTU-sized frames'}`, async (t) => {
    const s = await setup(t, vnetHdr);
    const total = 256 * 1024;
    const client = nodeIn(s, `
      const sock = require('net').connect(5201, '${PEER_IP}', () => { sock.end(Buffer.alloc(${total}, 7)); });
      sock.on('error', (e) => { console.error(e.message); process.exit(2); });
      setTimeout(() => process.exit(0), 20000).unref();`);
    t.after(() => client.kill('SIGKILL'));
    await waitFor(() => s.peer.counts.tcpPayloadBytes >= total, `${total} bytes of TCP payload (got ${s.peer.counts.tcpPayloadBytes})`, 20_000);
    if (!vnetHdr) {
      assert.ok(s.peer.counts.largestTcpFrame <= MTU + 14, `largest TCP frame ${s.peer.counts.largestTcpFrame}`);
      assert.equal(s.offloaded.length, 0);
      return;
    }
    const gso = s.offloaded.filter((f) => (decodeVirtioNetHdr(f.offload!).gsoType & 0x7f) === VIRTIO_NET_HDR_GSO_TCPV4);
    t.diagnostic(`${s.offloaded.length} frames with offload metadata, ${gso.length} TCPv4 GSO, largest TCP frame ${s.peer.counts.largestTcpFrame} bytes, ${s.peer.counts.tcpDataSegments} data frames for ${total} bytes`);
    assert.ok(gso.length > 0, 'at least one TCPv4 GSO frame');
    assert.ok(s.peer.counts.largestTcpFrame > MTU + 14, `largest TCP frame ${s.peer.counts.largestTcpFrame} exceeds the MTU`);
    for (const f of gso) {
      const hdr = decodeVirtioNetHdr(f.offload!);
      assert.ok(hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 'GSO frame has a partial checksum');
      assert.ok(hdr.gsoSize > 0 && hdr.gsoSize <= 1460, `gso_size ${hdr.gsoSize}`);
      const segs = segmentFrame(f);
      for (const seg of segs) {
        assert.ok(seg.data.length <= MTU + 14, `segment of ${seg.data.length} bytes`);
        verifyChecksums(seg.data);
      }
    }
  });

  test(`a UDP GSO super-frame sent to a port ${mode} arrives as separate, valid datagrams (${vnetHdr ? 'kernel' : 'software'} segmentation)`, async (t) => {
    const s = await setup(t, vnetHdr);
    const server = nodeIn(s, `
      const sock = require('dgram').createSocket('udp4');
      let n = 0;
      sock.on('message', (m) => { n++; process.stdout.write(n + ':' + m.length + ':' + m[0] + '\\n'); });
      sock.bind(7000, '${VM_IP}', () => process.stdout.write('ready\\n'));
      setTimeout(() => process.exit(0), 20000).unref();`);
    t.after(() => server.kill('SIGKILL'));
    let out = '';
    server.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor(() => out.includes('ready'), 'the UDP server in the namespace', 60_000);
    const seg = 1000;
    const count = 4;
    const payload = Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.alloc(seg, i + 1)));
    const src = ipv4Bytes(PEER_IP);
    const dst = ipv4Bytes(VM_IP);
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(40000, 0);
    udp.writeUInt16BE(7000, 2);
    udp.writeUInt16BE(8 + payload.length, 4);
    udp.writeUInt16BE(ipv4PseudoHeaderSum(src, dst, 17, 8 + payload.length), 6); // partial, as a kernel would leave it
    const data = Buffer.concat([ethHeader(VM_MAC, PEER_MAC, 0x0800), ipv4Header(src, dst, 17, 8 + payload.length, 100), udp, payload]);
    const offload = encodeVirtioNetHdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, hdrLen: 42, gsoSize: seg, csumStart: 34, csumOffset: 6 });
    s.port.send({ data, offload });
    await waitFor(() => out.split('\n').filter((l) => /^\d+:/.test(l)).length >= count, `${count} datagrams in the namespace (got ${JSON.stringify(out)})`);
    const lines = out.split('\n').filter((l) => /^\d+:/.test(l));
    assert.deepEqual(lines.map((l) => l.split(':').slice(1).join(':')), ['1000:1', '1000:2', '1000:3', '1000:4']);
    assert.equal(s.port.stats.txFrames, vnetHdr ? 1 : count);
  });
}

test('a burst of frames arrives in batches (more than one frame per callback)', async (t) => {
  const s = await setup(t, true);
  await run(['ip', '-n', s.ns, 'neigh', 'replace', PEER_IP, 'lladdr', formatMac(PEER_MAC), 'dev', s.port.name]);
  const sent = 2000;
  const sender = nodeIn(s, `
    const sock = require('dgram').createSocket('udp4');
    const b = Buffer.alloc(64);
    let left = ${sent};
    (function burst() { for (let i = 0; i < 200 && left > 0; i++, left--) sock.send(b, 9, '${PEER_IP}'); if (left > 0) setImmediate(burst); else sock.close(); })();`);
  t.after(() => sender.kill('SIGKILL'));
  await once(sender, 'exit');
  await waitFor(() => s.port.stats.rxFrames >= sent / 4, `frames of the burst (got ${s.port.stats.rxFrames})`);
  const biggest = Math.max(...s.batches);
  t.diagnostic(`${s.port.stats.rxFrames} frames in ${s.batches.length} batches, largest ${biggest}`);
  assert.ok(biggest > 1, `largest batch ${biggest}`);
  assert.ok(biggest <= 64, 'batches are bounded');
});

test('deleting the device while reading reports one TapError through onFailure; the process carries on', async (t) => {
  const s = await setup(t, false);
  const failures: Error[] = [];
  s.port.onFailure((err) => failures.push(err));
  await run(['ip', '-n', s.ns, 'link', 'del', 'dev', s.port.name]);
  await waitFor(() => failures.length > 0, 'the failure callback');
  const err = failures[0]!;
  t.diagnostic(`onFailure reported: ${err.message} (errno ${(err as TapError).errno})`);
  assert.ok(err instanceof TapError, String(err));
  assert.equal(err.code, 'VNET_ERR_TAP');
  assert.ok(err.errno !== undefined && err.errno > 0, `errno ${err.errno}`);
  const dropped = s.port.stats.txDropped;
  s.port.send(plainFrame(Buffer.alloc(60)));
  assert.equal(s.port.stats.txDropped, dropped + 1, 'sends after failure are counted drops, not throws');
  await s.port.close();
  assert.equal(failures.length, 1, 'reported once');
});

test('attaches to an existing persistent TAP device by name, and TUNSETPERSIST off lets it go on close', async (t) => {
  const h = await useNetns(t);
  const name = h.linkName();
  await run(['ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
  h.trackHostLink(name);
  const dev = TapDevice.open({ name, persist: false });
  assert.equal(dev.name, name);
  dev.close();
  assert.equal(await h.link(undefined, name), undefined);
});

test('opening fails with a TapError carrying errno: a name too long, a name taken by a non-TAP link', async (t) => {
  assert.throws(() => TapPort.open({ name: 'x'.repeat(20), mac: VM_MAC, mtu: MTU, logger: silentLogger() }), (e: unknown) => e instanceof TapError && e.errno === 36);
  const h = await useNetns(t);
  const [veth] = await h.vethPair();
  assert.throws(() => TapPort.open({ name: veth, mac: VM_MAC, mtu: MTU, logger: silentLogger() }), (e: unknown) => e instanceof TapError && typeof e.errno === 'number');
});
