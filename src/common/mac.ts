/**
 * MAC addresses on the hot path are plain numbers (48 bits fit exactly in a
 * double), read straight from the frame; strings only at the edges.
 */
export type Mac = number;

export const BROADCAST_MAC: Mac = 0xffff_ffff_ffff;

const MAC_RE = /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Parse "aa:bb:cc:dd:ee:ff" (or with '-', or no separator); throws RangeError naming the input. */
export function parseMac(text: string): Mac {
  const m = MAC_RE.exec(text.trim());
  if (m === null) throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  const hex = [m[1], m[3], m[4], m[5], m[6], m[7]].join('');
  return Number.parseInt(hex, 16);
}

export function isMacString(text: string): boolean {
  return MAC_RE.test(text.trim());
}

export function formatMac(mac: Mac): string {
  const hex = mac.toString(16).padStart(12, '0');
  return hex.match(/../g)!.join(':');
}

/** Destination MAC of an Ethernet frame (bytes 0..5). The caller checks length >= 14. */
export function dstMacOf(frame: Uint8Array): Mac {
  return (frame[0]! * 0x10000_0000_00) + (frame[1]! * 0x1_0000_0000) + ((frame[2]! << 24) >>> 0) + (frame[3]! << 16) + (frame[4]! << 8) + frame[5]!;
}

/** Source MAC of an Ethernet frame (bytes 6..11). The caller checks length >= 14. */
export function srcMacOf(frame: Uint8Array): Mac {
  return (frame[6]! * 0x10000_0000_00) + (frame[7]! * 0x1_0000_0000) + ((frame[8]! << 24) >>> 0) + (frame[9]! << 16) + (frame[10]! << 8) + frame[11]!;
}

/** Group bit set: broadcast or multicast. */
export function isMulticastMac(mac: Mac): boolean {
  return Math.floor(mac / 0x10000_0000_00) % 2 === 1;
}

export function writeMac(mac: Mac, into: Uint8Array, offset: number): void {
  let v = mac;
  for (let i = 5; i >= 0; i--) {
    into[offset + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

/** A locally administered unicast MAC derived from a seed (for generated VMs). */
export function localMac(seed: number): Mac {
  return 0x02_00_00_00_00_00 + (seed % 0x1_0000_0000_00);
}
