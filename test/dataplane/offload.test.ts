import { test } from 'node:test';
import assert from 'node:assert/strict';
import { segmentFrame, softwareOffload, MAX_GSO_SEGMENTS } from '../../src/dataplane/offload.ts';
import { OffloadError } from '../../src/dataplane/errors.ts';
import {
  encodeVirtioNetHdr,
  offloadNeedsWork,
  decodeVirtioNetHdr,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  VIRTIO_NET_HDR_GSO_ECN,
} from '../../src/dataplane/virtio-net-hdr.ts';
import type { Frame } from '../../src/common/frame.ts';
import { MAX_FRAME_BYTES } from '../../src/common/frame.ts';
import { onesSum, parseIp as parse, verifyChecksums } from '../helpers/packets.ts';

// ---------------------------------------------------------------- hand-built frames

const MAC_HDR = Buffer.from('020000000002' + '020000000001', 'hex');

function payloadBytes(n: number, seed = 7): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function tcpHeader(seq: number, flags: number, options = 0): Buffer {
  const t = Buffer.alloc(20 + options);
  t.writeUInt16BE(40000, 0);
  t.writeUInt16BE(5201, 2);
  t.writeUInt32BE(seq, 4);
  t.writeUInt32BE(0x01020304, 8);
  t[12] = ((20 + options) / 4) << 4;
  t[13] = flags;
  t.writeUInt16BE(64240, 14);
  for (let i = 20; i < 20 + options; i++) t[i] = 1; // NOP options
  return t;
}

function udpHeader(): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(40001, 0);
  u.writeUInt16BE(5353, 2);
  return u;
}

function ethernet(type: number, vlan?: number): Buffer {
  if (vlan === undefined) return Buffer.concat([MAC_HDR, Buffer.from([type >> 8, type & 0xff])]);
  return Buffer.concat([MAC_HDR, Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff, type >> 8, type & 0xff])]);
}

function ipv4Header(proto: number, l4Len: number, id: number): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4Len, 2);
  ip.writeUInt16BE(id, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip[8] = 64;
  ip[9] = proto;
  Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(ip, 12);
  return ip; // checksum left 0, as the kernel leaves a GSO header's is recomputed anyway
}

function ipv6Header(proto: number, l4Len: number): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(l4Len, 4);
  ip[6] = proto;
  ip[7] = 64;
  Buffer.from('fd000000000000000000000000000001', 'hex').copy(ip, 8);
  Buffer.from('fd000000000000000000000000000002', 'hex').copy(ip, 24);
  return ip;
}

function gsoFrame(family: 4 | 6, l4: Buffer, payload: Buffer, gsoType: number, mss: number, vlan?: number): Frame {
  const proto = l4.length === 8 ? 17 : 6;
  const eth = ethernet(family === 4 ? 0x0800 : 0x86dd, vlan);
  const ip = family === 4 ? ipv4Header(proto, l4.length + payload.length, 0xfff0) : ipv6Header(proto, l4.length + payload.length);
  const data = Buffer.concat([eth, ip, l4, payload]);
  const csumStart = eth.length + ip.length;
  const offload = encodeVirtioNetHdr({
    flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType,
    hdrLen: csumStart + l4.length,
    gsoSize: mss,
    csumStart,
    csumOffset: proto === 6 ? 16 : 6,
  });
  return { data, offload };
}

function reassemble(frames: Frame[]): Buffer {
  return Buffer.concat(frames.map((f) => {
    const p = parse(f.data);
    const l4Len = p.proto === 6 ? (f.data[p.l4 + 12]! >> 4) * 4 : 8;
    return f.data.subarray(p.l4 + l4Len);
  }));
}

// ---------------------------------------------------------------- tests

test('TCPv4 GSO: segments carry MSS-sized payload, fixed headers, and checksums that verify', () => {
  const payload = payloadBytes(5000);
  const seq = 0xffff_f000; // wraps past 2^32 within the burst
  const frame = gsoFrame(4, tcpHeader(seq, 0x18 | TCP_FIN | 0x80 /* ACK|PSH|FIN|CWR */), payload, VIRTIO_NET_HDR_GSO_TCPV4, 1448);
  const before = Buffer.from(frame.data);
  const segs = segmentFrame(frame);
  assert.deepEqual(frame.data, before, 'input frame untouched');
  assert.equal(segs.length, 4);
  assert.deepEqual(reassemble(segs), payload);
  segs.forEach((s, i) => {
    assert.equal(s.offload, undefined);
    verifyChecksums(s.data);
    const p = parse(s.data);
    const last = i === segs.length - 1;
    assert.equal(s.data.length - p.l4 - 20, last ? 5000 - 3 * 1448 : 1448);
    assert.equal(s.data.readUInt16BE(p.l3 + 4), (0xfff0 + i) & 0xffff, 'IPv4 id increments');
    assert.equal(s.data.readUInt32BE(p.l4 + 4), (seq + i * 1448) % 2 ** 32, 'sequence number');
    const flags = s.data[p.l4 + 13]!;
    assert.equal((flags & TCP_FIN) !== 0, last, 'FIN only on the last');
    assert.equal((flags & 0x08) !== 0, last, 'PSH only on the last');
    assert.equal((flags & 0x80) !== 0, i === 0, 'CWR only on the first');
    assert.ok((flags & 0x10) !== 0, 'ACK on every segment');
  });
});

const TCP_FIN = 0x01;

test('TCPv6 GSO with TCP options and a VLAN tag: reassembles to the payload, every checksum verifies', () => {
  const payload = payloadBytes(60_000, 3);
  const frame = gsoFrame(6, tcpHeader(1000, 0x18, 12), payload, VIRTIO_NET_HDR_GSO_TCPV6, 1428, 42);
  const segs = segmentFrame(frame);
  assert.equal(segs.length, Math.ceil(60_000 / 1428));
  assert.deepEqual(reassemble(segs), payload);
  for (const [i, s] of segs.entries()) {
    verifyChecksums(s.data);
    assert.equal(s.data.readUInt16BE(14), 42, 'VLAN tag kept');
    assert.equal(s.data.readUInt32BE(parse(s.data).l4 + 4), 1000 + i * 1428);
    assert.ok(s.data.length <= 18 + 40 + 32 + 1428);
  }
});

test('GSO with the ECN bit in gso_type segments like plain TCP', () => {
  const frame = gsoFrame(4, tcpHeader(1, 0x10), payloadBytes(3000), VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1000);
  const segs = segmentFrame(frame);
  assert.equal(segs.length, 3);
  segs.forEach((s) => verifyChecksums(s.data));
});

test('a GSO frame no larger than one MSS becomes one segment with completed checksums', () => {
  const payload = payloadBytes(100);
  const segs = segmentFrame(gsoFrame(4, tcpHeader(5, 0x18), payload, VIRTIO_NET_HDR_GSO_TCPV4, 1448));
  assert.equal(segs.length, 1);
  verifyChecksums(segs[0]!.data);
  assert.deepEqual(reassemble(segs), payload);
  assert.equal(segs[0]!.data[parse(segs[0]!.data).l4 + 13]! & 0x08, 0x08, 'PSH kept on the only segment');
});

test('UDP_L4 (USO) GSO over IPv4 and IPv6: one datagram per gso_size, UDP lengths and checksums right', () => {
  for (const family of [4, 6] as const) {
    const payload = payloadBytes(4000, family);
    const segs = segmentFrame(gsoFrame(family, udpHeader(), payload, VIRTIO_NET_HDR_GSO_UDP_L4, 1200));
    assert.equal(segs.length, 4);
    assert.deepEqual(reassemble(segs), payload);
    segs.forEach((s) => verifyChecksums(s.data));
  }
});

test('NEEDS_CSUM without GSO: the checksum is completed from csum_start, on a copy', () => {
  for (const [family, l4] of [[4, tcpHeader(9, 0x18)], [6, tcpHeader(9, 0x18)], [4, udpHeader()], [6, udpHeader()]] as const) {
    const payload = payloadBytes(333, 11);
    const frame = gsoFrame(family, Buffer.from(l4), payload, VIRTIO_NET_HDR_GSO_NONE, 0);
    const p = parse(frame.data);
    const csumAt = p.l4 + (p.proto === 6 ? 16 : 6);
    const l4Len = frame.data.length - p.l4;
    if (p.proto === 17) frame.data.writeUInt16BE(l4Len, p.l4 + 4); // a whole datagram carries its length
    // The kernel leaves the folded pseudo-header sum (not complemented) in the checksum field.
    if (p.ipv4) {
      const iph = frame.data.subarray(p.l3, p.l4);
      iph.writeUInt16BE(0, 10);
      iph.writeUInt16BE(~onesSum(iph) & 0xffff, 10);
      const ps = Buffer.alloc(12);
      frame.data.copy(ps, 0, p.l3 + 12, p.l3 + 20);
      ps[9] = p.proto;
      ps.writeUInt16BE(l4Len, 10);
      frame.data.writeUInt16BE(onesSum(ps), csumAt);
    } else {
      const ps = Buffer.alloc(40);
      frame.data.copy(ps, 0, p.l3 + 8, p.l3 + 40);
      ps.writeUInt32BE(l4Len, 32);
      ps[39] = p.proto;
      frame.data.writeUInt16BE(onesSum(ps), csumAt);
    }
    const before = Buffer.from(frame.data);
    const [out, ...rest] = segmentFrame(frame);
    assert.equal(rest.length, 0);
    assert.deepEqual(frame.data, before, 'input untouched');
    verifyChecksums(out!.data);
    assert.equal(out!.offload, undefined);
  }
});

test('headers that ask for nothing (zeros, DATA_VALID only, or none) pass the frame through as it is', () => {
  const data = Buffer.concat([ethernet(0x0800), ipv4Header(6, 20, 1), tcpHeader(1, 0x10)]);
  for (const offload of [undefined, Buffer.alloc(10), encodeVirtioNetHdr({ flags: VIRTIO_NET_HDR_F_DATA_VALID, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 })]) {
    assert.equal(offloadNeedsWork(offload), false);
    const out = segmentFrame({ data, offload });
    assert.equal(out.length, 1);
    assert.equal(out[0]!.data, data);
    assert.equal(out[0]!.offload, undefined);
  }
});

test('bad metadata and unparseable headers raise OffloadError (segmentFrame) or undefined (softwareOffload)', () => {
  const good = gsoFrame(4, tcpHeader(1, 0x10), payloadBytes(3000), VIRTIO_NET_HDR_GSO_TCPV4, 1000);
  const hdr = decodeVirtioNetHdr(good.offload!);
  const cases: Array<[string, Frame]> = [
    ['short header', { data: good.data, offload: Buffer.from([1, 1]) }],
    ['csum outside frame', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: 0, csumStart: 5000 }) }],
    ['csum field past end', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: 0, csumStart: good.data.length - 1, csumOffset: 0 }) }],
    ['gso_size 0', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoSize: 0 }) }],
    ['too many segments', { data: Buffer.concat([good.data, Buffer.alloc(MAX_GSO_SEGMENTS * 8)]), offload: encodeVirtioNetHdr({ ...hdr, gsoSize: 8 }) }],
    ['TCPV6 on IPv4', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: VIRTIO_NET_HDR_GSO_TCPV6 }) }],
    ['UFO', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: VIRTIO_NET_HDR_GSO_UDP }) }],
    ['unknown gso', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: 9 }) }],
    ['USO on TCP', { data: good.data, offload: encodeVirtioNetHdr({ ...hdr, gsoType: VIRTIO_NET_HDR_GSO_UDP_L4 }) }],
    ['truncated IPv4', { data: good.data.subarray(0, 20), offload: good.offload }],
    ['truncated TCP', { data: good.data.subarray(0, 40), offload: good.offload }],
    ['ARP', { data: Buffer.concat([ethernet(0x0806), Buffer.alloc(28)]), offload: good.offload }],
    ['runt', { data: Buffer.alloc(6), offload: good.offload }],
  ];
  for (const [name, frame] of cases) {
    assert.throws(() => segmentFrame(frame), (e: unknown) => e instanceof OffloadError && e.code === 'VNET_ERR_OFFLOAD', name);
    assert.equal(softwareOffload(frame), undefined, name);
  }
});

test('random bytes under random offload headers never throw anything but OffloadError (bounded fuzz)', () => {
  let x = 12345;
  const rnd = (n: number): number => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % n;
  };
  const base = gsoFrame(4, tcpHeader(1, 0x18), payloadBytes(2000), VIRTIO_NET_HDR_GSO_TCPV4, 700).data;
  for (let i = 0; i < 2000; i++) {
    const data = Buffer.from(base.subarray(0, rnd(base.length + 1)));
    for (let k = rnd(8); k > 0; k--) data[rnd(Math.max(1, data.length))] = rnd(256);
    const offload = Buffer.alloc(10);
    offload[0] = rnd(4);
    offload[1] = [0, 1, 3, 4, 5, 0x81, rnd(256)][rnd(7)]!;
    offload.writeUInt16LE(rnd(3000), 4);
    offload.writeUInt16LE(rnd(80), 6);
    offload.writeUInt16LE(rnd(24), 8);
    try {
      const out = segmentFrame({ data, offload });
      for (const f of out) assert.equal(f.offload, undefined);
    } catch (e) {
      assert.ok(e instanceof OffloadError, `unexpected ${String(e)}`);
    }
  }
});

test('a GSO frame whose segments would not fit the IPv4 total length (gso_size near 64 KiB) is an OffloadError, not a RangeError', () => {
  // A frame of MAX_FRAME_BYTES without a VLAN tag is 65,539 bytes of IPv4 packet; as IPv6 its payload (65,499) still fits.
  for (const family of [4] as const) {
    for (const l4 of [tcpHeader(1, 0x18), udpHeader()]) {
      // Built small, then filled to MAX_FRAME_BYTES (the IP length fields of a GSO frame are not read; they cannot hold this size).
      const small = gsoFrame(family, l4, payloadBytes(100), l4.length === 8 ? VIRTIO_NET_HDR_GSO_UDP_L4 : family === 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6, 65_535);
      const frame: Frame = { data: Buffer.concat([small.data, payloadBytes(MAX_FRAME_BYTES - small.data.length)]), offload: small.offload };
      assert.equal(frame.data.length, MAX_FRAME_BYTES);
      assert.throws(() => segmentFrame(frame), (err: unknown) => err instanceof OffloadError && /over 65535/.test(err.message), `IPv${family} ${l4.length === 8 ? 'UDP' : 'TCP'}`);
      assert.equal(softwareOffload(frame), undefined, 'dropped and counted on the data path, never thrown');
    }
  }
  // The largest segments that fit still go through.
  const fits = gsoFrame(4, tcpHeader(1, 0x18), payloadBytes(65_535 - 40), VIRTIO_NET_HDR_GSO_TCPV4, 65_535 - 40);
  assert.equal(segmentFrame(fits).length, 1);
  const small6 = gsoFrame(6, tcpHeader(1, 0x18), payloadBytes(100), VIRTIO_NET_HDR_GSO_TCPV6, 65_535);
  assert.equal(segmentFrame({ data: Buffer.concat([small6.data, payloadBytes(MAX_FRAME_BYTES - small6.data.length)]), offload: small6.offload }).length, 1);
});
