import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Frame } from '../../src/common/frame.ts';
import { MIN_FRAME_BYTES } from '../../src/common/frame.ts';
import type { Mac } from '../../src/common/mac.ts';
import { PortAlreadyStartedError, PortClosedError } from '../../src/dataplane/errors.ts';
import { PORT_FRAME_OVERHEAD, type Port } from '../../src/dataplane/port.ts';
import { encodeVirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP_L4 } from '../../src/dataplane/virtio-net-hdr.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { ethHeader, ipv4Bytes, ipv4Header, ipv4PseudoHeaderSum, parseIp, verifyChecksums } from '../helpers/packets.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * One suite for every Port (memory, TAP with and without vnet_hdr, a packet
 * socket on a TAP device a VM holds, QEMU's
 * `-netdev stream` socket): what the daemon relies on from any of them
 * (src/dataplane/port.ts). Each implementation supplies a harness that opens
 * a port and plays the VM on its far side: the VM sends raw Ethernet frames
 * into the port and collects what the port delivers to it. A new port type
 * plugs in with one harness and one `portCompliance(name, harness)` call.
 *
 * Test frames carry EtherType 0x88b5 and a sequence number
 * (test/helpers/ethernet.ts); frames the VM side did not send (a kernel's own
 * traffic on a TAP) are ignored where the suite counts frames, but not where
 * it checks the port's counters against what it handed over.
 */
export interface PortHarness {
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  /** A new port for a VM with this MAC and MTU (not started), and its VM side. */
  open(init: { mac: Mac; mtu: number }): Promise<PortFixture>;
}

export interface PortFixture {
  port: Port;
  vm: VmSide;
  /** Take the device away under the port (a TAP deleted, a QEMU gone): the port must report one failure. */
  breakDevice(): Promise<void>;
  /** Free what the fixture made; never throws. */
  cleanup(): Promise<void>;
}

export interface VmSide {
  /** The VM transmits these frames, in order; resolves once the port's device has them. */
  send(frames: readonly Buffer[]): Promise<void>;
  /** Copies of the frames the port delivered to the VM so far, in order. */
  received(): readonly Buffer[];
}

const VM_MAC: Mac = 0x02_00_00_77_00_01;
const PEER_MAC: Mac = 0x02_00_00_77_00_02;
const MTU = 1400;
const TEST_ETHERTYPE = 0x88b5;

interface Started {
  batches: Frame[][];
  failures: Error[];
}

function isTestFrame(data: Buffer): boolean {
  return data.length >= 22 && data.readUInt16BE(12) === TEST_ETHERTYPE;
}

/** Start the port, keeping copies of every batch (frame data may be a view into a reused buffer). */
function startCollecting(port: Port): Started {
  const s: Started = { batches: [], failures: [] };
  port.onFailure((err) => s.failures.push(err));
  port.start((frames) => {
    s.batches.push(frames.map((f) => ({ data: Buffer.from(f.data), offload: f.offload === undefined ? undefined : Buffer.from(f.offload) })));
  });
  return s;
}

function testFramesIn(s: Started): Frame[] {
  return s.batches.flat().filter((f) => isTestFrame(f.data));
}

/** Frames to the VM that it got, among its test frames (in order), and their sequence numbers. */
function seqsAtVm(vm: VmSide): number[] {
  return vm.received().filter(isTestFrame).map(seqOf);
}

/** A frame for the VM: from the peer to the VM's MAC. */
function toVm(seq: number, size = 64): Frame {
  return { data: testFrame(VM_MAC, PEER_MAC, seq, size), offload: undefined };
}

/** Let queued callbacks (microtasks, a port's deferred reports) run; then absence can be asserted. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A UDP/IPv4 GSO super-frame of `count` segments of `seg` bytes, checksum left partial as a kernel leaves it. */
function udpSuperFrame(count: number, seg: number): Frame {
  const payload = Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.alloc(seg, i + 1)));
  const src = ipv4Bytes('10.77.0.2');
  const dst = ipv4Bytes('10.77.0.1');
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(7000, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  udp.writeUInt16BE(ipv4PseudoHeaderSum(src, dst, 17, 8 + payload.length), 6);
  const data = Buffer.concat([ethHeader(VM_MAC, PEER_MAC, 0x0800), ipv4Header(src, dst, 17, 8 + payload.length, 100), udp, payload]);
  const offload = encodeVirtioNetHdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4, hdrLen: 42, gsoSize: seg, csumStart: 34, csumOffset: 6 });
  return { data, offload };
}

/** The UDP datagrams of the super-frame's flow among what the VM received (port 40000 → 7000). */
function udpAtVm(vm: VmSide): Buffer[] {
  return vm.received().filter((f) => f.length > 42 && f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(34) === 40000 && f.readUInt16BE(36) === 7000);
}

export function portCompliance(name: string, h: PortHarness): void {
  describe(`port compliance: ${name}`, { timeout: 60_000 }, () => {
    const cleanup: (() => Promise<void>)[] = [];
    before(async () => h.setup?.());
    after(async () => {
      for (const c of cleanup.reverse()) await c().catch(() => undefined);
      await h.teardown?.();
    });
    const open = async (mtu = MTU): Promise<PortFixture> => {
      const f = await h.open({ mac: VM_MAC, mtu });
      cleanup.push(() => f.cleanup());
      return f;
    };

    it('reports the MAC and MTU it was opened with, a name and a kind, and counters at zero', async () => {
      const { port } = await open(1280);
      assert.equal(port.mac, VM_MAC);
      assert.equal(port.mtu, 1280);
      assert.ok(port.name.length > 0);
      assert.ok(port.kind.length > 0);
      assert.equal(typeof port.acceptsOffload, 'boolean');
      assert.deepEqual(port.stats, { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, errors: 0 });
    });

    it('hands the VM\'s frames to the receive handler complete, in order and in batches, frames sent before start included', async () => {
      const { port, vm } = await open();
      const sizes = Array.from({ length: 100 }, (_, i) => [60, 64, 600, MTU + 14][i % 4]!);
      await vm.send(sizes.map((size, i) => testFrame(PEER_MAC, VM_MAC, i, size)));
      const s = startCollecting(port);
      await waitFor(() => testFramesIn(s).length >= 100, 'the VM\'s 100 frames at the handler');
      const got = testFramesIn(s);
      assert.deepEqual(got.map((f) => seqOf(f.data)), sizes.map((_, i) => i));
      assert.deepEqual(got.map((f) => f.data.length), sizes);
      for (const f of got) assert.ok(f.offload === undefined, 'a plain frame from the VM carries no offload metadata');
      assert.ok(s.batches.every((b) => b.length > 0), 'no empty batch');
      assert.ok(Math.max(...s.batches.map((b) => b.length)) > 1, `a burst arrives in batches (sizes ${s.batches.map((b) => b.length).join(',')})`);
    });

    it('counts exactly what it hands to the handler (rxFrames, rxBytes)', async () => {
      const { port, vm } = await open();
      const s = startCollecting(port);
      await vm.send(Array.from({ length: 20 }, (_, i) => testFrame(PEER_MAC, VM_MAC, i, 100 + i)));
      await waitFor(() => testFramesIn(s).length >= 20, 'the VM\'s 20 frames at the handler');
      const all = s.batches.flat();
      assert.equal(port.stats.rxFrames, all.length);
      assert.equal(port.stats.rxBytes, all.reduce((n, f) => n + f.data.length, 0));
      for (const f of all) assert.ok(f.data.length >= MIN_FRAME_BYTES, 'no runt reaches the handler');
    });

    it('delivers frames to the VM in order, byte for byte, and counts them (txFrames, txBytes)', async () => {
      const { port, vm } = await open();
      startCollecting(port);
      const frames = Array.from({ length: 100 }, (_, i) => toVm(i, 60 + ((i * 97) % (MTU - 46))));
      for (const f of frames) port.send(f);
      await waitFor(() => seqsAtVm(vm).length >= 100, 'the 100 frames at the VM');
      const got = vm.received().filter(isTestFrame);
      got.forEach((g, i) => assert.ok(g.equals(frames[i]!.data), `frame ${i} arrives unchanged`));
      assert.equal(port.stats.txFrames, 100);
      assert.equal(port.stats.txBytes, frames.reduce((n, f) => n + f.data.length, 0));
      assert.equal(port.stats.txDropped, 0);
    });

    it('delivers frames up to the MTU plus an Ethernet header and a VLAN tag; drops a longer one and a runt, counted, never thrown', async () => {
      const { port, vm } = await open();
      startCollecting(port);
      port.send(toVm(1, MTU + 14));
      port.send(toVm(2, MTU + PORT_FRAME_OVERHEAD));
      port.send(toVm(3, MTU + PORT_FRAME_OVERHEAD + 1));
      port.send({ data: testFrame(VM_MAC, PEER_MAC, 4).subarray(0, MIN_FRAME_BYTES - 1), offload: undefined });
      port.send(toVm(5));
      await waitFor(() => seqsAtVm(vm).includes(5), 'the marker frame after the dropped ones');
      assert.deepEqual(seqsAtVm(vm), [1, 2, 5]);
      assert.equal(vm.received().length, 3, 'the runt did not reach the VM either');
      assert.equal(port.stats.txDropped, 2);
      assert.equal(port.stats.txFrames, 3);
    });

    it('segments a GSO super-frame into valid frames when it does not accept offload, or hands it over whole when it does', async () => {
      const { port, vm } = await open();
      startCollecting(port);
      const count = 4;
      const seg = 1000;
      port.send(udpSuperFrame(count, seg));
      port.send(toVm(1));
      await waitFor(() => seqsAtVm(vm).includes(1), 'the marker frame after the super-frame');
      const datagrams = udpAtVm(vm);
      const payload = Buffer.concat(datagrams.map((d) => d.subarray(parseIp(d).l4 + 8)));
      assert.ok(payload.equals(Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.alloc(seg, i + 1)))), 'the VM gets the whole payload, in order');
      if (port.acceptsOffload) {
        assert.equal(port.stats.txFrames, 2, 'the super-frame went over as one frame (and the marker)');
      } else {
        assert.equal(datagrams.length, count);
        for (const d of datagrams) {
          assert.ok(d.length <= port.mtu + 14, `segment of ${d.length} bytes fits the MTU`);
          verifyChecksums(d);
        }
        assert.equal(port.stats.txFrames, count + 1);
      }
      assert.equal(port.stats.txDropped, 0);
    });

    it('drops a frame whose offload metadata it cannot apply, counted, never thrown', async () => {
      const { port, vm } = await open();
      startCollecting(port);
      // TCPv4 segmentation asked of a frame that is not IP at all.
      const bad: Frame = { data: testFrame(VM_MAC, PEER_MAC, 1, 200), offload: encodeVirtioNetHdr({ flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: VIRTIO_NET_HDR_GSO_TCPV4, hdrLen: 54, gsoSize: 100, csumStart: 34, csumOffset: 16 }) };
      assert.doesNotThrow(() => port.send(bad));
      port.send(toVm(2));
      await waitFor(() => seqsAtVm(vm).includes(2), 'the marker frame');
      if (port.acceptsOffload) {
        // Handed to the VM's kernel as it is, which may take or refuse it; either way it is accounted for.
        assert.equal(port.stats.txFrames + port.stats.txDropped, 2);
      } else {
        assert.deepEqual(seqsAtVm(vm), [2]);
        assert.equal(port.stats.txDropped, 1);
        assert.ok(port.stats.errors >= 1, 'counted as an error');
      }
    });

    it('start is once only: a second start throws PortAlreadyStartedError', async () => {
      const { port } = await open();
      port.start(() => undefined);
      assert.throws(() => port.start(() => undefined), (e: unknown) => e instanceof PortAlreadyStartedError && e.code === 'VNET_ERR_PORT_STARTED');
    });

    it('after close: sends are counted drops, start throws PortClosedError, close again resolves, no failure is reported', async () => {
      const { port, vm } = await open();
      const s = startCollecting(port);
      port.send(toVm(1));
      await waitFor(() => seqsAtVm(vm).includes(1), 'a frame before close');
      await port.close();
      const before = { ...port.stats };
      assert.doesNotThrow(() => port.send(toVm(2)));
      assert.equal(port.stats.txDropped, before.txDropped + 1);
      assert.equal(port.stats.txFrames, before.txFrames);
      await port.close();
      const fresh = await open();
      await fresh.port.close();
      assert.throws(() => fresh.port.start(() => undefined), (e: unknown) => e instanceof PortClosedError && e.code === 'VNET_ERR_PORT_CLOSED');
      await turn();
      assert.deepEqual(s.failures, []);
      assert.deepEqual(seqsAtVm(vm), [1]);
    });

    it('reports a device that goes away once, through onFailure, as a typed error; afterwards sends are counted drops', async () => {
      const f = await open();
      const s = startCollecting(f.port);
      await f.breakDevice();
      await waitFor(() => s.failures.length > 0, 'the failure report');
      const err = s.failures[0] as Error & { code?: unknown };
      assert.ok(err instanceof Error);
      assert.match(String(err.code), /^VNET_ERR_/);
      const dropped = f.port.stats.txDropped;
      assert.doesNotThrow(() => f.port.send(toVm(1)));
      assert.equal(f.port.stats.txDropped, dropped + 1);
      await f.port.close();
      await turn();
      assert.equal(s.failures.length, 1, 'reported once');
    });

    it('reports a failure that happened before onFailure was registered, once', async () => {
      const f = await open();
      f.port.start(() => undefined);
      await f.breakDevice();
      // No handler yet: the port must keep the failure until one is registered.
      const failures: Error[] = [];
      await waitFor(async () => {
        // A failure is noticed when the device is next touched (a read or a write); a send is a touch.
        f.port.send(toVm(0));
        await turn();
        return f.port.stats.errors > 0; // a device failure is counted in errors
      }, 'the port to notice the failure');
      f.port.onFailure((err) => failures.push(err));
      await waitFor(() => failures.length > 0, 'the late failure report');
      await turn();
      assert.equal(failures.length, 1);
    });
  });
}
