import { EncodeError } from './errors.ts';

/**
 * Text forms of the addresses in OXM fields: MACs as "aa:bb:cc:dd:ee:ff"
 * (lower case), IPv4 dotted quads, IPv6 in RFC 5952 form. Parsing is strict
 * and throws an EncodeError naming the field.
 */

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

export function macToBytes(mac: string, field: string): Buffer {
  if (typeof mac !== 'string' || !MAC_RE.test(mac)) throw new EncodeError(`${field} must be a MAC address like 02:00:00:00:00:01, got ${String(mac)}`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

export function macFromBytes(b: Buffer, at = 0): string {
  const h = b.toString('hex', at, at + 6);
  return `${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}:${h.slice(10, 12)}`;
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function ipv4ToBytes(ip: string, field: string): Buffer {
  if (typeof ip !== 'string' || !IPV4_RE.test(ip)) throw new EncodeError(`${field} must be an IPv4 address like 10.0.0.1, got ${String(ip)}`);
  return Buffer.from(ip.split('.').map(Number));
}

export function ipv4FromBytes(b: Buffer, at = 0): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

export function ipv6ToBytes(ip: string, field: string): Buffer {
  const bad = (): EncodeError => new EncodeError(`${field} must be an IPv6 address like fd00::1, got ${String(ip)}`);
  if (typeof ip !== 'string' || ip.length > 39) throw bad();
  const halves = ip.split('::');
  if (halves.length > 2) throw bad();
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) throw bad();
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) throw bad();
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  return out;
}

/** RFC 5952: lower case, leading zeros dropped, the longest run (≥ 2) of zero groups as "::". */
export function ipv6FromBytes(b: Buffer, at = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(at + i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best === -1) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
