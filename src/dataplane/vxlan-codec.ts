import { MIN_FRAME_BYTES } from '../common/frame.ts';
import { ConfigError } from '../common/errors.ts';

/**
 * The VXLAN header (RFC 7348, section 5): 8 bytes in front of the inner
 * Ethernet frame, in a UDP datagram.
 *
 *    0               1               2               3
 *   |R|R|R|R|I|R|R|R|           Reserved (24 bits)                |
 *   |          VXLAN Network Identifier (VNI, 24 bits)|  Reserved  |
 *
 * We send the I flag and zeros elsewhere. We accept, like Linux's `vxlan`
 * driver, only a header with the I flag set and every other flag and
 * reserved bit zero (the extensions that use them — GBP, GPE — are not
 * spoken here). Decoding never throws: it says what was wrong.
 */

export const VXLAN_HEADER_BYTES = 8;
/** The IANA-assigned VXLAN port. Linux's `ip link add … type vxlan` defaults to 8472 unless given `dstport 4789`. */
export const VXLAN_DEFAULT_PORT = 4789;
export const VXLAN_MAX_VNI = 0xff_ffff;
const FLAG_I = 0x08;

/** Why a datagram did not decode: too short for a header and an Ethernet header; flags other than exactly I; reserved bits set. */
export type VxlanMalformed = 'short' | 'flags' | 'reserved';

export type VxlanDecoded = { ok: true; vni: number; frame: Buffer } | { ok: false; reason: VxlanMalformed };

/** A VNI from configuration: an integer in 0…2^24-1, else a ConfigError naming `key`. */
export function checkVni(vni: unknown, key = 'vxlan.vni'): number {
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > VXLAN_MAX_VNI) {
    throw new ConfigError(`VNI must be an integer from 0 to ${VXLAN_MAX_VNI}, got ${JSON.stringify(vni)}`, { key });
  }
  return vni;
}

/** The 8-byte header for `vni` (one per endpoint: it never changes, so it is shared by every datagram). */
export function encodeVxlanHeader(vni: number): Buffer {
  const h = Buffer.alloc(VXLAN_HEADER_BYTES);
  h[0] = FLAG_I;
  h.writeUIntBE(checkVni(vni), 4, 3);
  return h;
}

/** Split a datagram into VNI and inner frame (a view into `datagram`). */
export function decodeVxlan(datagram: Buffer): VxlanDecoded {
  if (datagram.length < VXLAN_HEADER_BYTES + MIN_FRAME_BYTES) return { ok: false, reason: 'short' };
  if (datagram[0] !== FLAG_I) return { ok: false, reason: 'flags' };
  if (datagram[1] !== 0 || datagram[2] !== 0 || datagram[3] !== 0 || datagram[7] !== 0) return { ok: false, reason: 'reserved' };
  const vni = (datagram[4]! << 16) | (datagram[5]! << 8) | datagram[6]!;
  return { ok: true, vni, frame: datagram.subarray(VXLAN_HEADER_BYTES) };
}
