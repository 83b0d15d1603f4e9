/**
 * Hand-built IPv4 packets for tests, and an independent checksum verifier
 * (written the slow, obvious way, deliberately not sharing code with
 * src/dataplane/internet-checksum.ts).
 */
import assert from 'node:assert/strict';
import { writeMac, type Mac } from '../../src/common/mac.ts';

/** RFC 1071 ones'-complement sum, folded, not complemented. */
export function onesSum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return sum;
}

export function checksum(bytes: Uint8Array): number {
  return ~onesSum(bytes) & 0xffff;
}

export interface ParsedIp {
  ipv4: boolean;
  l3: number;
  l4: number;
  proto: number;
}

/** Offsets of the IP and L4 headers of an Ethernet frame (VLAN tags skipped); asserts it is IP. */
export function parseIp(frame: Buffer): ParsedIp {
  let off = 12;
  while (frame.readUInt16BE(off) === 0x8100) off += 4;
  const type = frame.readUInt16BE(off);
  const l3 = off + 2;
  if (type === 0x0800) return { ipv4: true, l3, l4: l3 + (frame[l3]! & 0xf) * 4, proto: frame[l3 + 9]! };
  assert.equal(type, 0x86dd, `EtherType 0x${type.toString(16)} is not IP`);
  return { ipv4: false, l3, l4: l3 + 40, proto: frame[l3 + 6]! };
}

/** Asserts the IPv4 header checksum, the IP length fields and the TCP/UDP checksum of a plain frame. */
export function verifyChecksums(frame: Buffer): void {
  const p = parseIp(frame);
  const l4Len = frame.length - p.l4;
  let pseudo: Buffer;
  if (p.ipv4) {
    assert.equal(onesSum(frame.subarray(p.l3, p.l4)), 0xffff, 'IPv4 header checksum');
    assert.equal(frame.readUInt16BE(p.l3 + 2), frame.length - p.l3, 'IPv4 total length');
    pseudo = Buffer.alloc(12);
    frame.copy(pseudo, 0, p.l3 + 12, p.l3 + 20);
    pseudo[9] = p.proto;
    pseudo.writeUInt16BE(l4Len, 10);
  } else {
    assert.equal(frame.readUInt16BE(p.l3 + 4), frame.length - p.l3 - 40, 'IPv6 payload length');
    pseudo = Buffer.alloc(40);
    frame.copy(pseudo, 0, p.l3 + 8, p.l3 + 40);
    pseudo.writeUInt32BE(l4Len, 32);
    pseudo[39] = p.proto;
  }
  if (p.proto === 17) assert.equal(frame.readUInt16BE(p.l4 + 4), l4Len, 'UDP length');
  assert.equal(onesSum(Buffer.concat([pseudo, frame.subarray(p.l4)])), 0xffff, `L4 checksum of a ${frame.length}-byte frame`);
}

export function ipv4Bytes(text: string): Buffer {
  const parts = text.split('.').map((x) => Number.parseInt(x, 10));
  assert.equal(parts.length, 4);
  return Buffer.from(parts);
}

export function ethHeader(dst: Mac, src: Mac, type: number): Buffer {
  const b = Buffer.alloc(14);
  writeMac(dst, b, 0);
  writeMac(src, b, 6);
  b.writeUInt16BE(type, 12);
  return b;
}

/** An IPv4 header (20 bytes, DF, TTL 64) with its checksum. */
export function ipv4Header(src: Buffer, dst: Buffer, proto: number, l4Len: number, id = 1): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4Len, 2);
  ip.writeUInt16BE(id & 0xffff, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = proto;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return ip;
}

/** Sum of the IPv4 pseudo-header (folded, not complemented): what the kernel leaves in a partial checksum. */
export function ipv4PseudoHeaderSum(src: Buffer, dst: Buffer, proto: number, l4Len: number): number {
  const ps = Buffer.alloc(12);
  src.copy(ps, 0);
  dst.copy(ps, 4);
  ps[9] = proto;
  ps.writeUInt16BE(l4Len, 10);
  return onesSum(ps);
}

/** A whole UDP/IPv4 frame with correct checksums. */
export function udpFrame(dstMac: Mac, srcMac: Mac, src: Buffer, dst: Buffer, sport: number, dport: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const l4 = Buffer.concat([udp, payload]);
  const ps = Buffer.alloc(12);
  src.copy(ps, 0);
  dst.copy(ps, 4);
  ps[9] = 17;
  ps.writeUInt16BE(l4.length, 10);
  l4.writeUInt16BE(checksum(Buffer.concat([ps, l4])) || 0xffff, 6);
  return Buffer.concat([ethHeader(dstMac, srcMac, 0x0800), ipv4Header(src, dst, 17, l4.length), l4]);
}
