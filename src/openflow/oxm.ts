import { ipv4FromBytes, ipv4ToBytes, ipv6FromBytes, ipv6ToBytes, macFromBytes, macToBytes } from './addresses.ts';
import { EncodeError, MalformedMessageError } from './errors.ts';
import { Reader, Writer } from './wire.ts';

/**
 * OXM (OpenFlow Extensible Match), OpenFlow 1.3 §7.2.2: the match of a flow,
 * a packet-in or a flow-removed, as TLVs of class OFPXMC_OPENFLOW_BASIC
 * (0x8000), each header class (16) | field (7) | hasmask (1) | length (8).
 *
 * A `Match` names the basic fields a controller uses; a maskable field takes
 * either a value or `{ value, mask }`. Fields of other classes (Open
 * vSwitch's NXM registers, experimenter fields) are kept raw in `other`.
 * Known fields are encoded in the order of the object's keys — a decoded
 * match keeps the switch's order, so what a switch sends re-encodes byte for
 * byte — except that a field never goes before its prerequisite (§7.2.3.6:
 * ip_proto after eth_type, tcp_dst after ip_proto, …); `other` follows.
 */

export const OXM_CLASS_OPENFLOW_BASIC = 0x8000;
export const OFPMT_OXM = 1;
/** The VLAN id field's "a tag is present" bit (OFPVID_PRESENT). */
export const OFPVID_PRESENT = 0x1000;

type Kind = 'u8' | 'u16' | 'u32' | 'u64' | 'mac' | 'ipv4' | 'ipv6';
type ValueOf<K extends Kind> = K extends 'u64' ? bigint : K extends 'u8' | 'u16' | 'u32' ? number : string;
export type Masked<V> = V | { value: V; mask: V };

const FIELDS = {
  inPort: [0, 'u32', false],
  inPhyPort: [1, 'u32', false],
  metadata: [2, 'u64', true],
  ethDst: [3, 'mac', true],
  ethSrc: [4, 'mac', true],
  ethType: [5, 'u16', false],
  vlanVid: [6, 'u16', true],
  vlanPcp: [7, 'u8', false],
  ipDscp: [8, 'u8', false],
  ipEcn: [9, 'u8', false],
  ipProto: [10, 'u8', false],
  ipv4Src: [11, 'ipv4', true],
  ipv4Dst: [12, 'ipv4', true],
  tcpSrc: [13, 'u16', false],
  tcpDst: [14, 'u16', false],
  udpSrc: [15, 'u16', false],
  udpDst: [16, 'u16', false],
  sctpSrc: [17, 'u16', false],
  sctpDst: [18, 'u16', false],
  icmpv4Type: [19, 'u8', false],
  icmpv4Code: [20, 'u8', false],
  arpOp: [21, 'u16', false],
  arpSpa: [22, 'ipv4', true],
  arpTpa: [23, 'ipv4', true],
  arpSha: [24, 'mac', true],
  arpTha: [25, 'mac', true],
  ipv6Src: [26, 'ipv6', true],
  ipv6Dst: [27, 'ipv6', true],
  ipv6Flabel: [28, 'u32', true],
  icmpv6Type: [29, 'u8', false],
  icmpv6Code: [30, 'u8', false],
  ipv6NdTarget: [31, 'ipv6', false],
  ipv6NdSll: [32, 'mac', false],
  ipv6NdTll: [33, 'mac', false],
  mplsLabel: [34, 'u32', false],
  mplsTc: [35, 'u8', false],
  mplsBos: [36, 'u8', false],
  tunnelId: [38, 'u64', true],
  ipv6Exthdr: [39, 'u16', true],
} as const satisfies Record<string, readonly [number, Kind, boolean]>;

type Fields = typeof FIELDS;
export type MatchField = keyof Fields;

/** A raw OXM TLV of a class or field this codec does not interpret. */
export interface RawOxm {
  oxmClass: number;
  field: number;
  hasMask: boolean;
  /** Value followed by mask when hasMask, as on the wire (experimenter TLVs: the experimenter id first). */
  payload: Buffer;
}

export type Match = {
  -readonly [K in MatchField]?: Fields[K][2] extends true ? Masked<ValueOf<Fields[K][1]>> : ValueOf<Fields[K][1]>;
} & { other?: RawOxm[] };

const SIZE: Record<Kind, number> = { u8: 1, u16: 2, u32: 4, u64: 8, mac: 6, ipv4: 4, ipv6: 16 };
const BY_NUMBER = new Map<number, MatchField>(Object.entries(FIELDS).map(([name, [n]]) => [n, name as MatchField]));

/** The field each field requires to be matched before it (OpenFlow 1.3 table 12), when present in the same match. */
const PREREQUISITE: Partial<Record<MatchField, MatchField>> = {
  vlanPcp: 'vlanVid',
  ...Object.fromEntries(
    (['ipDscp', 'ipEcn', 'ipProto', 'ipv4Src', 'ipv4Dst', 'ipv6Src', 'ipv6Dst', 'ipv6Flabel', 'arpOp', 'arpSpa', 'arpTpa', 'arpSha', 'arpTha', 'mplsLabel', 'mplsTc', 'mplsBos', 'ipv6Exthdr'] as const).map((f) => [f, 'ethType']),
  ),
  ...Object.fromEntries((['tcpSrc', 'tcpDst', 'udpSrc', 'udpDst', 'sctpSrc', 'sctpDst', 'icmpv4Type', 'icmpv4Code', 'icmpv6Type', 'icmpv6Code'] as const).map((f) => [f, 'ipProto'])),
  ipv6NdTarget: 'icmpv6Type',
  ipv6NdSll: 'icmpv6Type',
  ipv6NdTll: 'icmpv6Type',
};

/** The match's fields in key order, each moved after its prerequisite if it came first. */
function encodingOrder(names: MatchField[]): MatchField[] {
  const out: MatchField[] = [];
  const placed = new Set<MatchField>();
  let rest = names;
  while (rest.length > 0) {
    const deferred: MatchField[] = [];
    for (const name of rest) {
      const pre = PREREQUISITE[name];
      if (pre !== undefined && names.includes(pre) && !placed.has(pre)) deferred.push(name);
      else {
        out.push(name);
        placed.add(name);
      }
    }
    rest = deferred;
  }
  return out;
}

function valueBytes(kind: Kind, v: unknown, field: string): Buffer {
  switch (kind) {
    case 'mac':
      return macToBytes(v as string, field);
    case 'ipv4':
      return ipv4ToBytes(v as string, field);
    case 'ipv6':
      return ipv6ToBytes(v as string, field);
    case 'u64': {
      if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new EncodeError(`${field} must be a bigint in 0..2^64-1, got ${String(v)}`);
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(v);
      return b;
    }
    default: {
      const size = SIZE[kind];
      const max = 2 ** (size * 8) - 1;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new EncodeError(`${field} must be an integer in 0..${max}, got ${String(v)}`);
      const b = Buffer.alloc(size);
      b.writeUIntBE(v, 0, size);
      return b;
    }
  }
}

function valueFrom(kind: Kind, b: Buffer, at: number): number | bigint | string {
  switch (kind) {
    case 'mac':
      return macFromBytes(b, at);
    case 'ipv4':
      return ipv4FromBytes(b, at);
    case 'ipv6':
      return ipv6FromBytes(b, at);
    case 'u64':
      return b.readBigUInt64BE(at);
    default:
      return b.readUIntBE(at, SIZE[kind]);
  }
}

/** The OXM TLVs of a match, without the ofp_match header (also the payload of a set-field action). */
export function writeOxmFields(w: Writer, match: Match): void {
  const names: MatchField[] = [];
  for (const key of Object.keys(match)) {
    if (key === 'other' || (match as Record<string, unknown>)[key] === undefined) continue;
    if (!(key in FIELDS)) throw new EncodeError(`unknown match field "${key}"`);
    names.push(key as MatchField);
  }
  for (const name of encodingOrder(names)) {
    const v = match[name];
    if (v === undefined) continue;
    const [field, kind, maskable] = FIELDS[name];
    const masked = typeof v === 'object' && v !== null;
    if (masked && !maskable) throw new EncodeError(`match field ${name} cannot be masked`);
    const value = valueBytes(kind, masked ? v.value : v, name);
    const mask = masked ? valueBytes(kind, v.mask, `${name} mask`) : undefined;
    w.u16(OXM_CLASS_OPENFLOW_BASIC, 'oxm class').u8((field << 1) | (mask ? 1 : 0), 'oxm field');
    w.u8(value.length * (mask ? 2 : 1), 'oxm length').bytes(value);
    if (mask) w.bytes(mask);
  }
  for (const raw of match.other ?? []) {
    if (raw.oxmClass === OXM_CLASS_OPENFLOW_BASIC && BY_NUMBER.has(raw.field)) throw new EncodeError(`raw OXM field ${raw.field} is a basic field: name it in the match`);
    w.u16(raw.oxmClass, 'oxm class').u8(((raw.field & 0x7f) << 1) | (raw.hasMask ? 1 : 0), 'oxm field');
    w.u8(raw.payload.length, 'oxm length').bytes(raw.payload);
  }
}

/** Decode OXM TLVs until the reader is exhausted. */
export function readOxmFields(r: Reader): Match {
  const match: Match = {};
  const m = match as Record<string, unknown>;
  while (r.remaining > 0) {
    const oxmClass = r.u16('oxm class');
    const fh = r.u8('oxm field');
    const len = r.u8('oxm length');
    const field = fh >> 1;
    const hasMask = (fh & 1) === 1;
    const name = oxmClass === OXM_CLASS_OPENFLOW_BASIC ? BY_NUMBER.get(field) : undefined;
    if (name === undefined) {
      (match.other ??= []).push({ oxmClass, field, hasMask, payload: r.bytes(len, `oxm ${oxmClass.toString(16)}:${field} payload`) });
      continue;
    }
    const [, kind, maskable] = FIELDS[name];
    if (hasMask && !maskable) throw new MalformedMessageError(`${r.what}: match field ${name} has a mask but is not maskable`);
    const size = SIZE[kind] * (hasMask ? 2 : 1);
    if (len !== size) throw new MalformedMessageError(`${r.what}: match field ${name} has length ${len}, expected ${size}`);
    if (m[name] !== undefined) throw new MalformedMessageError(`${r.what}: match field ${name} appears twice`);
    const at = r.pos;
    r.skip(len, `match field ${name}`);
    const value = valueFrom(kind, r.buf, at);
    m[name] = hasMask ? { value, mask: valueFrom(kind, r.buf, at + SIZE[kind]) } : value;
  }
  return match;
}

/** ofp_match: type OFPMT_OXM, length (without padding), TLVs, padding to 8. */
export function writeMatch(w: Writer, match: Match): void {
  const start = w.length;
  w.u16(OFPMT_OXM, 'match type').u16(0, 'match length');
  writeOxmFields(w, match);
  w.patchU16(start + 2, w.length - start, 'match length');
  w.pad8();
}

export function readMatch(r: Reader): Match {
  const type = r.u16('match type');
  const length = r.u16('match length');
  if (type !== OFPMT_OXM) throw new MalformedMessageError(`${r.what}: match type ${type}, only OFPMT_OXM (1) is OpenFlow 1.3`);
  if (length < 4) throw new MalformedMessageError(`${r.what}: match length ${length} is under 4`);
  const fields = readOxmFields(r.sub(length - 4, `${r.what} match`));
  r.skip((8 - (length % 8)) % 8, 'match padding');
  return fields;
}
