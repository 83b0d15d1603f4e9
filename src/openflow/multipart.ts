import { readInstructions, writeInstructions, type Instruction } from './actions.ts';
import { MalformedMessageError } from './errors.ts';
import { readMatch, writeMatch, type Match } from './oxm.ts';
import { OFP_PORT_BYTES, readPort, writePort, type PortDesc } from './port.ts';
import { Reader, Writer } from './wire.ts';

/**
 * MULTIPART requests and replies (OpenFlow 1.3 §7.3.5): switch description,
 * flow stats, aggregate stats, port stats, port descriptions and table
 * features (properties kept raw). Other multipart types are kept raw. A
 * reply may come in several messages (flags & OFPMPF_REPLY_MORE); the switch
 * connection joins them.
 */

export const OFPMP = { desc: 0, flow: 1, aggregate: 2, portStats: 4, tableFeatures: 12, portDesc: 13 } as const;
/** flags: more messages of this reply (or request) follow. */
export const OFPMPF_MORE = 1;

export interface FlowStatsRequest {
  tableId: number;
  outPort: number;
  outGroup: number;
  cookie: bigint;
  cookieMask: bigint;
  match: Match;
}

export type MultipartRequestBody =
  | { kind: 'desc' }
  | ({ kind: 'flow' } & FlowStatsRequest)
  | ({ kind: 'aggregate' } & FlowStatsRequest)
  | { kind: 'port-stats'; portNo: number }
  | { kind: 'port-desc' }
  | { kind: 'table-features'; tables: TableFeatures[] }
  | { kind: 'raw'; multipartType: number; body: Buffer };

export interface SwitchDesc {
  mfrDesc: string;
  hwDesc: string;
  swDesc: string;
  serialNum: string;
  dpDesc: string;
}

export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
  instructions: Instruction[];
}

export const PORT_COUNTERS = [
  'rxPackets',
  'txPackets',
  'rxBytes',
  'txBytes',
  'rxDropped',
  'txDropped',
  'rxErrors',
  'txErrors',
  'rxFrameErr',
  'rxOverErr',
  'rxCrcErr',
  'collisions',
] as const;

export type PortStats = { portNo: number; durationSec: number; durationNsec: number } & Record<(typeof PORT_COUNTERS)[number], bigint>;

export interface TableFeatures {
  tableId: number;
  name: string;
  metadataMatch: bigint;
  metadataWrite: bigint;
  config: number;
  maxEntries: number;
  /** The feature properties as TLVs (type, body without the 4-byte header and padding). */
  properties: { type: number; body: Buffer }[];
}

export type MultipartReplyBody =
  | ({ kind: 'desc' } & SwitchDesc)
  | { kind: 'flow'; flows: FlowStats[] }
  | { kind: 'aggregate'; packetCount: bigint; byteCount: bigint; flowCount: number }
  | { kind: 'port-stats'; ports: PortStats[] }
  | { kind: 'port-desc'; ports: PortDesc[] }
  | { kind: 'table-features'; tables: TableFeatures[] }
  | { kind: 'raw'; multipartType: number; body: Buffer };

const KIND_TYPE = { desc: OFPMP.desc, flow: OFPMP.flow, aggregate: OFPMP.aggregate, 'port-stats': OFPMP.portStats, 'port-desc': OFPMP.portDesc, 'table-features': OFPMP.tableFeatures } as const;

export function multipartType(body: MultipartRequestBody | MultipartReplyBody): number {
  return body.kind === 'raw' ? body.multipartType : KIND_TYPE[body.kind];
}

// ---------------------------------------------------------------- requests

export function writeMultipartRequest(w: Writer, body: MultipartRequestBody): void {
  switch (body.kind) {
    case 'desc':
    case 'port-desc':
      return;
    case 'flow':
    case 'aggregate':
      w.u8(body.tableId, 'table id').zeros(3).u32(body.outPort, 'out port').u32(body.outGroup, 'out group').zeros(4);
      w.u64(body.cookie, 'cookie').u64(body.cookieMask, 'cookie mask');
      return writeMatch(w, body.match);
    case 'port-stats':
      w.u32(body.portNo, 'port no').zeros(4);
      return;
    case 'table-features':
      return writeTableFeatures(w, body.tables);
    case 'raw':
      w.bytes(body.body);
      return;
  }
}

export function readMultipartRequest(type: number, r: Reader): MultipartRequestBody {
  switch (type) {
    case OFPMP.desc:
    case OFPMP.portDesc:
      if (r.remaining !== 0) throw new MalformedMessageError(`${r.what}: a ${type === OFPMP.desc ? 'desc' : 'port-desc'} request has no body, got ${r.remaining} bytes`);
      return { kind: type === OFPMP.desc ? 'desc' : 'port-desc' };
    case OFPMP.flow:
    case OFPMP.aggregate: {
      const tableId = r.u8('table id');
      r.skip(3, 'pad');
      const outPort = r.u32('out port');
      const outGroup = r.u32('out group');
      r.skip(4, 'pad');
      const cookie = r.u64('cookie');
      const cookieMask = r.u64('cookie mask');
      const match = readMatch(r);
      expectEnd(r);
      return { kind: type === OFPMP.flow ? 'flow' : 'aggregate', tableId, outPort, outGroup, cookie, cookieMask, match };
    }
    case OFPMP.portStats: {
      const portNo = r.u32('port no');
      r.skip(4, 'pad');
      expectEnd(r);
      return { kind: 'port-stats', portNo };
    }
    case OFPMP.tableFeatures:
      return { kind: 'table-features', tables: readTableFeatures(r) };
    default:
      return { kind: 'raw', multipartType: type, body: r.bytes(r.remaining, 'body') };
  }
}

// ---------------------------------------------------------------- replies

export function writeMultipartReply(w: Writer, body: MultipartReplyBody): void {
  switch (body.kind) {
    case 'desc':
      w.string(body.mfrDesc, 256, 'mfr_desc').string(body.hwDesc, 256, 'hw_desc').string(body.swDesc, 256, 'sw_desc');
      w.string(body.serialNum, 32, 'serial_num').string(body.dpDesc, 256, 'dp_desc');
      return;
    case 'flow':
      for (const f of body.flows) {
        const at = w.length;
        w.u16(0, 'flow stats length').u8(f.tableId, 'table id').zeros(1).u32(f.durationSec, 'duration_sec').u32(f.durationNsec, 'duration_nsec');
        w.u16(f.priority, 'priority').u16(f.idleTimeout, 'idle timeout').u16(f.hardTimeout, 'hard timeout').u16(f.flags, 'flags').zeros(4);
        w.u64(f.cookie, 'cookie').u64(f.packetCount, 'packet count').u64(f.byteCount, 'byte count');
        writeMatch(w, f.match);
        writeInstructions(w, f.instructions);
        w.patchU16(at, w.length - at, 'flow stats length');
      }
      return;
    case 'aggregate':
      w.u64(body.packetCount, 'packet count').u64(body.byteCount, 'byte count').u32(body.flowCount, 'flow count').zeros(4);
      return;
    case 'port-stats':
      for (const p of body.ports) {
        w.u32(p.portNo, 'port no').zeros(4);
        for (const c of PORT_COUNTERS) w.u64(p[c], c);
        w.u32(p.durationSec, 'duration_sec').u32(p.durationNsec, 'duration_nsec');
      }
      return;
    case 'port-desc':
      for (const p of body.ports) writePort(w, p);
      return;
    case 'table-features':
      return writeTableFeatures(w, body.tables);
    case 'raw':
      w.bytes(body.body);
      return;
  }
}

export function readMultipartReply(type: number, r: Reader): MultipartReplyBody {
  switch (type) {
    case OFPMP.desc: {
      const mfrDesc = r.string(256, 'mfr_desc');
      const hwDesc = r.string(256, 'hw_desc');
      const swDesc = r.string(256, 'sw_desc');
      const serialNum = r.string(32, 'serial_num');
      const dpDesc = r.string(256, 'dp_desc');
      expectEnd(r);
      return { kind: 'desc', mfrDesc, hwDesc, swDesc, serialNum, dpDesc };
    }
    case OFPMP.flow: {
      const flows: FlowStats[] = [];
      while (r.remaining > 0) {
        const at = r.pos;
        const length = r.u16('flow stats length');
        if (length < 56) throw new MalformedMessageError(`${r.what}: flow stats entry of ${length} bytes (at least 56)`);
        r.pos = at;
        const e = r.sub(length, 'flow stats entry');
        e.skip(2, 'length');
        const tableId = e.u8('table id');
        e.skip(1, 'pad');
        const durationSec = e.u32('duration_sec');
        const durationNsec = e.u32('duration_nsec');
        const priority = e.u16('priority');
        const idleTimeout = e.u16('idle timeout');
        const hardTimeout = e.u16('hard timeout');
        const flags = e.u16('flags');
        e.skip(4, 'pad');
        const cookie = e.u64('cookie');
        const packetCount = e.u64('packet count');
        const byteCount = e.u64('byte count');
        const match = readMatch(e);
        flows.push({ tableId, durationSec, durationNsec, priority, idleTimeout, hardTimeout, flags, cookie, packetCount, byteCount, match, instructions: readInstructions(e) });
      }
      return { kind: 'flow', flows };
    }
    case OFPMP.aggregate: {
      const packetCount = r.u64('packet count');
      const byteCount = r.u64('byte count');
      const flowCount = r.u32('flow count');
      r.skip(4, 'pad');
      expectEnd(r);
      return { kind: 'aggregate', packetCount, byteCount, flowCount };
    }
    case OFPMP.portStats: {
      const ports: PortStats[] = [];
      while (r.remaining > 0) {
        const e = r.sub(112, 'port stats entry');
        const portNo = e.u32('port no');
        e.skip(4, 'pad');
        const [rxPackets, txPackets, rxBytes, txBytes, rxDropped, txDropped, rxErrors, txErrors, rxFrameErr, rxOverErr, rxCrcErr, collisions] = PORT_COUNTERS.map((c) => e.u64(c)) as [bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint];
        ports.push({ portNo, rxPackets, txPackets, rxBytes, txBytes, rxDropped, txDropped, rxErrors, txErrors, rxFrameErr, rxOverErr, rxCrcErr, collisions, durationSec: e.u32('duration_sec'), durationNsec: e.u32('duration_nsec') });
      }
      return { kind: 'port-stats', ports };
    }
    case OFPMP.portDesc: {
      const ports: PortDesc[] = [];
      while (r.remaining > 0) ports.push(readPort(r.sub(OFP_PORT_BYTES, 'port description')));
      return { kind: 'port-desc', ports };
    }
    case OFPMP.tableFeatures:
      return { kind: 'table-features', tables: readTableFeatures(r) };
    default:
      return { kind: 'raw', multipartType: type, body: r.bytes(r.remaining, 'body') };
  }
}

// ---------------------------------------------------------------- table features

function writeTableFeatures(w: Writer, tables: readonly TableFeatures[]): void {
  for (const t of tables) {
    const at = w.length;
    w.u16(0, 'table features length').u8(t.tableId, 'table id').zeros(5).string(t.name, 32, 'table name');
    w.u64(t.metadataMatch, 'metadata match').u64(t.metadataWrite, 'metadata write').u32(t.config, 'config').u32(t.maxEntries, 'max entries');
    for (const p of t.properties) {
      w.u16(p.type, 'property type').u16(4 + p.body.length, 'property length').bytes(p.body);
      w.pad8();
    }
    w.patchU16(at, w.length - at, 'table features length');
  }
}

function readTableFeatures(r: Reader): TableFeatures[] {
  const tables: TableFeatures[] = [];
  while (r.remaining > 0) {
    const at = r.pos;
    const length = r.u16('table features length');
    if (length < 64) throw new MalformedMessageError(`${r.what}: table features entry of ${length} bytes (at least 64)`);
    r.pos = at;
    const e = r.sub(length, 'table features entry');
    e.skip(2, 'length');
    const tableId = e.u8('table id');
    e.skip(5, 'pad');
    const name = e.string(32, 'table name');
    const metadataMatch = e.u64('metadata match');
    const metadataWrite = e.u64('metadata write');
    const config = e.u32('config');
    const maxEntries = e.u32('max entries');
    const properties: TableFeatures['properties'] = [];
    while (e.remaining > 0) {
      const type = e.u16('property type');
      const plen = e.u16('property length');
      if (plen < 4) throw new MalformedMessageError(`${r.what}: table feature property ${type} of length ${plen}`);
      properties.push({ type, body: e.bytes(plen - 4, `property ${type}`) });
      e.skip(Math.min(e.remaining, (8 - (plen % 8)) % 8), 'property padding');
    }
    tables.push({ tableId, name, metadataMatch, metadataWrite, config, maxEntries, properties });
  }
  return tables;
}

function expectEnd(r: Reader): void {
  if (r.remaining !== 0) throw new MalformedMessageError(`${r.what}: ${r.remaining} bytes after the end of the body`);
}
