/**
 * Software offload: turns a frame that carries virtio-net offload metadata
 * (a checksum left partial, or a GSO "super-frame" of up to 64 KiB) into the
 * plain, wire-ready frames a port without offload support can take (a memory
 * port, a TAP device opened without IFF_VNET_HDR). Pure: bytes in, bytes out.
 *
 * Stages, per frame:
 *   decode   the virtio_net_hdr; nothing to do → the frame as it is (plain)
 *   parse    Ethernet (up to two VLAN tags) → IPv4 / IPv6 → TCP / UDP, bounded
 *   no GSO   NEEDS_CSUM: ones'-complement sum from csum_start to the end, stored
 *            at csum_start + csum_offset (the field already holds the
 *            pseudo-header sum, as the kernel leaves it)
 *   GSO      TCPv4/TCPv6: gso_size-byte segments, each with the headers copied
 *            and fixed (IPv4 total length, id + i, header checksum; IPv6
 *            payload length; TCP sequence + offset; FIN/PSH on the last segment
 *            only, CWR on the first only; full TCP checksum)
 *            UDP_L4 (USO): the same with UDP length and checksum per segment
 *            UDP (UFO, IP fragmentation) is not supported
 * Bad metadata or headers that do not parse raise OffloadError (callers on the
 * data path use `softwareOffload`, which returns undefined instead, to count
 * and drop the frame). The input is never modified: frames may be shared.
 */
import { OffloadError } from './errors.ts';
import type { Frame } from '../common/frame.ts';
import { finishChecksum, ipv4PseudoSum, ipv6PseudoSum, sumWords } from './internet-checksum.ts';
import {
  decodeVirtioNetHdr,
  offloadNeedsWork,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  type VirtioNetHdr,
} from './virtio-net-hdr.ts';

const ETH_P_IPV4 = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** Smallest gso_size accepted: bounds the number of segments one frame can expand to. */
export const MIN_GSO_SIZE = 8;
/** Most segments produced from one super-frame. */
export const MAX_GSO_SEGMENTS = 8192;

interface Headers {
  ipv4: boolean;
  l3: number; // offset of the IP header
  l4: number; // offset of the TCP/UDP header
  protocol: number;
}

/** Applies a frame's offload metadata in software; returns plain frames (offload undefined). Throws OffloadError. */
export function segmentFrame(frame: Frame): Frame[] {
  if (!offloadNeedsWork(frame.offload)) return [{ data: frame.data, offload: undefined }];
  const hdr = decodeVirtioNetHdr(frame.offload!);
  const gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso === VIRTIO_NET_HDR_GSO_NONE) return [{ data: completeChecksum(frame.data, hdr), offload: undefined }];
  switch (gso) {
    case VIRTIO_NET_HDR_GSO_TCPV4:
    case VIRTIO_NET_HDR_GSO_TCPV6:
      return segmentL4(frame.data, hdr, gso === VIRTIO_NET_HDR_GSO_TCPV4 ? 4 : 6, IPPROTO_TCP);
    case VIRTIO_NET_HDR_GSO_UDP_L4: {
      const h = parseHeaders(frame.data);
      return segmentL4(frame.data, hdr, h.ipv4 ? 4 : 6, IPPROTO_UDP);
    }
    case VIRTIO_NET_HDR_GSO_UDP:
      throw new OffloadError('UFO (GSO_UDP, IP fragmentation) is not supported');
    default:
      throw new OffloadError(`unknown gso_type ${hdr.gsoType}`);
  }
}

/** `segmentFrame` for the data path: undefined instead of an OffloadError. */
export function softwareOffload(frame: Frame): Frame[] | undefined {
  try {
    return segmentFrame(frame);
  } catch (err) {
    if (err instanceof OffloadError) return undefined;
    throw err;
  }
}

/**
 * Hand `frame` to a sink that takes only plain frames (a port without
 * offloads): as it is, or segmented in software. False when it cannot be
 * segmented; the caller counts the drop.
 */
export function eachPlainFrame(frame: Frame, write: (data: Buffer) => void): boolean {
  if (frame.offload === undefined) {
    write(frame.data);
    return true;
  }
  const plain = softwareOffload(frame);
  if (plain === undefined) return false;
  for (const f of plain) write(f.data);
  return true;
}

/** NEEDS_CSUM without GSO: a copy of the frame with the checksum completed. */
function completeChecksum(data: Buffer, hdr: VirtioNetHdr): Buffer {
  if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0) return data;
  const at = hdr.csumStart + hdr.csumOffset;
  if (hdr.csumStart >= data.length || at + 2 > data.length) {
    throw new OffloadError(`checksum at ${hdr.csumStart}+${hdr.csumOffset} lies outside a ${data.length}-byte frame`);
  }
  const out = Buffer.from(data);
  out.writeUInt16BE(finishChecksumMangled(sumWords(out, hdr.csumStart, out.length)), at);
  return out;
}

/** A computed checksum of 0 goes out as 0xffff (equal in ones' complement; 0 means "none" to UDP). */
function finishChecksumMangled(sum: number): number {
  return finishChecksum(sum) || 0xffff;
}

function parseHeaders(data: Buffer): Headers {
  if (data.length < 14) throw new OffloadError(`frame of ${data.length} bytes has no Ethernet header`);
  let off = 12;
  let type = data.readUInt16BE(off);
  for (let tags = 0; (type === ETH_P_8021Q || type === ETH_P_8021AD) && tags < 2; tags++) {
    off += 4;
    if (off + 2 > data.length) throw new OffloadError('truncated VLAN tag');
    type = data.readUInt16BE(off);
  }
  const l3 = off + 2;
  if (type === ETH_P_IPV4) {
    if (l3 + 20 > data.length || data[l3]! >> 4 !== 4) throw new OffloadError('truncated or malformed IPv4 header');
    const ihl = (data[l3]! & 0x0f) * 4;
    if (ihl < 20 || l3 + ihl > data.length) throw new OffloadError(`bad IPv4 header length ${ihl}`);
    if ((data.readUInt16BE(l3 + 6) & 0x3fff) !== 0) throw new OffloadError('IPv4 fragment cannot be offloaded');
    return { ipv4: true, l3, l4: l3 + ihl, protocol: data[l3 + 9]! };
  }
  if (type === ETH_P_IPV6) {
    if (l3 + 40 > data.length || data[l3]! >> 4 !== 6) throw new OffloadError('truncated or malformed IPv6 header');
    return { ipv4: false, l3, l4: l3 + 40, protocol: data[l3 + 6]! };
  }
  throw new OffloadError(`GSO frame with EtherType 0x${type.toString(16)} (not IPv4/IPv6)`);
}

/** GSO for TCP and UDP_L4: one copy of the headers per segment, fixed up, checksums completed. */
function segmentL4(data: Buffer, hdr: VirtioNetHdr, family: 4 | 6, protocol: number): Frame[] {
  const h = parseHeaders(data);
  if (h.ipv4 !== (family === 4)) throw new OffloadError(`gso_type ${hdr.gsoType} does not match an IPv${h.ipv4 ? 4 : 6} frame`);
  if (h.protocol !== protocol) throw new OffloadError(`gso_type ${hdr.gsoType} on IP protocol ${h.protocol}`);
  const tcp = protocol === IPPROTO_TCP;
  let l4Len = 8;
  if (tcp) {
    if (h.l4 + 20 > data.length) throw new OffloadError('truncated TCP header');
    l4Len = (data[h.l4 + 12]! >> 4) * 4;
    if (l4Len < 20) throw new OffloadError(`bad TCP data offset ${l4Len}`);
  }
  const hdrEnd = h.l4 + l4Len;
  if (hdrEnd > data.length) throw new OffloadError('truncated L4 header');
  const mss = hdr.gsoSize;
  if (mss < MIN_GSO_SIZE) throw new OffloadError(`gso_size ${mss} below ${MIN_GSO_SIZE}`);
  const payload = data.length - hdrEnd;
  const count = Math.max(1, Math.ceil(payload / mss));
  if (count > MAX_GSO_SEGMENTS) throw new OffloadError(`${count} segments exceed ${MAX_GSO_SEGMENTS}`);
  // The largest segment's IPv4 total length (IPv6 payload length, UDP length) must fit its 16 bits.
  const largest = hdrEnd + Math.min(mss, payload) - h.l3 - (h.ipv4 ? 0 : 40);
  if (largest > 0xffff) throw new OffloadError(`gso_size ${mss} makes ${largest}-byte IP ${h.ipv4 ? 'packets' : 'payloads'}, over 65535`);

  const out = Buffer.allocUnsafe(count * hdrEnd + payload);
  const seq0 = tcp ? data.readUInt32BE(h.l4 + 4) : 0;
  const flags0 = tcp ? data[h.l4 + 13]! : 0;
  const id0 = h.ipv4 ? data.readUInt16BE(h.l3 + 4) : 0;
  const frames: Frame[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const from = hdrEnd + i * mss;
    const segLen = Math.min(mss, data.length - from);
    data.copy(out, pos, 0, hdrEnd);
    data.copy(out, pos + hdrEnd, from, from + segLen);
    const seg = out.subarray(pos, pos + hdrEnd + segLen);
    pos += hdrEnd + segLen;
    const l3 = h.l3;
    const l4 = h.l4;
    if (h.ipv4) {
      seg.writeUInt16BE(seg.length - l3, l3 + 2);
      seg.writeUInt16BE((id0 + i) & 0xffff, l3 + 4);
      seg.writeUInt16BE(0, l3 + 10);
      seg.writeUInt16BE(finishChecksum(sumWords(seg, l3, l4)), l3 + 10);
    } else {
      seg.writeUInt16BE(seg.length - l3 - 40, l3 + 4);
    }
    const segL4Len = seg.length - l4;
    let csumAt: number;
    if (tcp) {
      seg.writeUInt32BE((seq0 + i * mss) % 0x1_0000_0000, l4 + 4);
      let flags = flags0;
      if (i < count - 1) flags &= ~(TCP_FIN | TCP_PSH);
      if (i > 0) flags &= ~TCP_CWR;
      seg[l4 + 13] = flags;
      csumAt = l4 + 16;
    } else {
      seg.writeUInt16BE(segL4Len, l4 + 4);
      csumAt = l4 + 6;
    }
    seg.writeUInt16BE(0, csumAt);
    const pseudo = h.ipv4 ? ipv4PseudoSum(seg, l3, protocol, segL4Len) : ipv6PseudoSum(seg, l3, protocol, segL4Len);
    seg.writeUInt16BE(finishChecksumMangled(sumWords(seg, l4, seg.length, pseudo)), csumAt);
    frames.push({ data: seg, offload: undefined });
  }
  return frames;
}
