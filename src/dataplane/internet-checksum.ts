/**
 * The Internet checksum (RFC 1071): ones'-complement sum of 16-bit big-endian
 * words. Sums are kept unfolded in a double (exact up to 2^53, i.e. far past
 * 64 KiB of data) and folded once at the end.
 */

/** Unfolded sum of the bytes [start, end) as big-endian 16-bit words; an odd last byte is padded with zero. */
export function sumWords(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits (end-around carry). */
export function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum to store: the complement of the folded sum. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header for an L4 segment of `l4Length` bytes. */
export function ipv4PseudoSum(buf: Uint8Array, ipOffset: number, protocol: number, l4Length: number): number {
  return sumWords(buf, ipOffset + 12, ipOffset + 20) + protocol + l4Length;
}

/** Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `l4Length` bytes. */
export function ipv6PseudoSum(buf: Uint8Array, ipOffset: number, nextHeader: number, l4Length: number): number {
  return sumWords(buf, ipOffset + 8, ipOffset + 40) + Math.floor(l4Length / 0x10000) + (l4Length % 0x10000) + nextHeader;
}
