import type { Frame } from '../common/frame.ts';
import { BROADCAST_MAC, type Mac } from '../common/mac.ts';

/**
 * The frames a VM's new host sends on the VM's behalf when it resumes there,
 * as QEMU's announce-self does after a migration: a RARP (EtherType 0x8035,
 * "request reverse", QEMU's own format) and, when the VM's IPv4 address is
 * known, a gratuitous ARP request. Both are broadcast from the VM's MAC, so
 * every learning table along the backbone — and any LAN behind the hub —
 * moves the MAC to the new host at once.
 */

const ETH_P_ARP = 0x0806;
const ETH_P_RARP = 0x8035;
const ARP_REQUEST = 1;
const RARP_REQUEST_REVERSE = 3;

function writeMac(b: Buffer, at: number, mac: Mac): void {
  b.writeUIntBE(mac, at, 6);
}

function arpLike(etherType: number, op: number, mac: Mac, senderIp: number, targetMac: Mac, targetIp: number): Frame {
  const b = Buffer.alloc(60); // 14 + 28, padded to the Ethernet minimum
  writeMac(b, 0, BROADCAST_MAC);
  writeMac(b, 6, mac);
  b.writeUInt16BE(etherType, 12);
  b.writeUInt16BE(1, 14); // hardware: Ethernet
  b.writeUInt16BE(0x0800, 16); // protocol: IPv4
  b[18] = 6;
  b[19] = 4;
  b.writeUInt16BE(op, 20);
  writeMac(b, 22, mac);
  b.writeUInt32BE(senderIp, 28);
  writeMac(b, 32, targetMac);
  b.writeUInt32BE(targetIp, 38);
  return { data: b, offload: undefined };
}

/** "10.0.0.1" or "10.0.0.1/24" to a 32-bit number; undefined for anything else. */
export function ipv4Number(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/\d{1,2})?$/.exec(text.trim());
  if (m === null) return undefined;
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

/** The announcement of a VM at its new place: a RARP, then a gratuitous ARP if its IPv4 address is known. */
export function announceFrames(mac: Mac, ip: string | undefined): Frame[] {
  const frames = [arpLike(ETH_P_RARP, RARP_REQUEST_REVERSE, mac, 0, mac, 0)];
  const addr = ipv4Number(ip);
  if (addr !== undefined) frames.push(arpLike(ETH_P_ARP, ARP_REQUEST, mac, addr, 0, addr));
  return frames;
}
