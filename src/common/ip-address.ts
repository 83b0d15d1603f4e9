import { isIP } from 'node:net';
import { IPv4, IPv6 } from 'ip-num';

/**
 * IP address literals as vnet reads, compares and prints them, for IPv4 and
 * IPv6 alike:
 *
 *   canonical   one text per address: IPv6 in lower case, zeros compressed
 *               (RFC 5952, `0:0::1` → `::1`); an IPv4-mapped IPv6 address
 *               (`::ffff:10.0.0.1`, what a dual-stack socket reports for an
 *               IPv4 peer) is the IPv4 address it maps (`10.0.0.1`), so
 *               per-source caps and comparisons see one peer, not two
 *   loopback    127.0.0.0/8, `::1`, and IPv4 loopback mapped into IPv6
 *   zone ids    (`fe80::1%eth0`) are refused: a zone names an interface of
 *               one machine, which means nothing in a deployment file shared
 *               by many; use a global or unique-local (fd00::/8) address
 *
 * The arithmetic (mapped ranges, prefixes) is ip-num's.
 */

/** Why `text` is not an IP address literal (undefined: it is one). Brackets are not part of an address. */
export function ipAddressProblem(text: string): string | undefined {
  if (text.includes('%')) return `"${text}" has a zone id (%…): not supported, use a global or unique-local IPv6 address`;
  if (text.startsWith('[')) return `"${text}": write an IPv6 address without brackets here`;
  return isIP(text) === 0 ? `"${text}" is not an IPv4 or IPv6 address` : undefined;
}

/** 4 or 6 for an IP literal (no zone id), 0 for anything else (a host name). */
export function ipVersion(text: string): 0 | 4 | 6 {
  if (text.includes('%')) return 0;
  return isIP(text) as 0 | 4 | 6;
}

/** The canonical text of an IP literal (see the header); anything else (a host name, '?') is returned as it is. */
export function canonicalAddress(text: string): string {
  const v = ipVersion(text);
  if (v === 4) return IPv4.fromString(text).toString();
  if (v !== 6) return text;
  const mapped = mappedIpv4(text);
  if (mapped !== undefined) return mapped.toString();
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, IPv4 loopback mapped into IPv6) or `localhost`. */
export function isLoopbackAddress(host: string | undefined): boolean {
  if (host === undefined) return false;
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  const v = ipVersion(h);
  if (v === 6) {
    const mapped = mappedIpv4(h);
    if (mapped === undefined) return IPv6.fromString(h).getValue() === 1n;
    return (mapped.getValue() >> 24n) === 127n;
  }
  return v === 4 && (IPv4.fromString(h).getValue() >> 24n) === 127n;
}

/** Whether `host` is the unspecified address (0.0.0.0, ::, or 0.0.0.0 mapped into IPv6): a wildcard to listen on, never one to dial. */
export function isUnspecifiedAddress(host: string): boolean {
  const v = ipVersion(host);
  if (v === 4) return IPv4.fromString(host).getValue() === 0n;
  if (v !== 6) return false;
  return IPv6.fromString(host).getValue() === 0n || mappedIpv4(host)?.getValue() === 0n;
}

/** `host` as it goes into a URL or a `host:port` text: an IPv6 literal in brackets. */
export function urlHost(host: string): string {
  return ipVersion(host) === 6 ? `[${host}]` : host;
}

/** Whether `text` is an address with an optional prefix length (`10.0.0.1/24`, `fd00::1/64`). */
export function isAddressWithPrefix(text: string): boolean {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const v = ipVersion(addr);
  if (v === 0) return false;
  if (slash === -1) return true;
  const len = text.slice(slash + 1);
  return /^\d{1,3}$/.test(len) && Number(len) <= (v === 4 ? 32 : 128);
}

function mappedIpv4(v6: string): IPv4 | undefined {
  const value = IPv6.fromString(v6).getValue();
  return value >> 32n === 0xffffn ? new IPv4(value & 0xffff_ffffn) : undefined;
}
