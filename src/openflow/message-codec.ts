import { readActions, readInstructions, writeActions, writeInstructions } from './actions.ts';
import { EncodeError, MalformedMessageError, OpenFlowDecodeError, UnknownTypeError } from './errors.ts';
import {
  CONTROLLER_ROLES,
  FLOW_MOD_COMMANDS,
  GROUP_MOD_COMMANDS,
  GROUP_TYPES,
  OFP_HEADER_BYTES,
  OFP_MAX_MESSAGE_BYTES,
  OFP_VERSION,
  OFPT,
  PORT_STATUS_REASONS,
  type OfMessage,
  type OfMessageType,
} from './messages.ts';
import { multipartType, readMultipartReply, readMultipartRequest, writeMultipartReply, writeMultipartRequest } from './multipart.ts';
import { readMatch, writeMatch } from './oxm.ts';
import { OFP_PORT_BYTES, readPort, writePort } from './port.ts';
import { Reader, Writer } from './wire.ts';

/**
 * One OpenFlow 1.3 message to bytes and back. `encodeMessage` validates
 * every field (an EncodeError names the bad one); `decodeMessage` takes one
 * whole message (header included) and returns the message or a typed
 * OpenFlowDecodeError — it never throws. The incremental decoder
 * (decoder.ts) splits a stream into messages and calls it.
 */

const TYPE_NUMBER: Record<OfMessageType, number> = {
  hello: OFPT.hello,
  error: OFPT.error,
  'echo-request': OFPT.echoRequest,
  'echo-reply': OFPT.echoReply,
  experimenter: OFPT.experimenter,
  'features-request': OFPT.featuresRequest,
  'features-reply': OFPT.featuresReply,
  'get-config-request': OFPT.getConfigRequest,
  'get-config-reply': OFPT.getConfigReply,
  'set-config': OFPT.setConfig,
  'packet-in': OFPT.packetIn,
  'flow-removed': OFPT.flowRemoved,
  'port-status': OFPT.portStatus,
  'packet-out': OFPT.packetOut,
  'flow-mod': OFPT.flowMod,
  'group-mod': OFPT.groupMod,
  'multipart-request': OFPT.multipartRequest,
  'multipart-reply': OFPT.multipartReply,
  'barrier-request': OFPT.barrierRequest,
  'barrier-reply': OFPT.barrierReply,
  'role-request': OFPT.roleRequest,
  'role-reply': OFPT.roleReply,
};
const TYPE_NAME = new Map<number, OfMessageType>(Object.entries(TYPE_NUMBER).map(([k, v]) => [v, k as OfMessageType]));

/** OFPHET_VERSIONBITMAP */
const HELLO_ELEM_VERSIONBITMAP = 1;

function indexOf<T>(list: readonly T[], value: T, what: string): number {
  const i = list.indexOf(value);
  if (i === -1) throw new EncodeError(`${what} must be one of ${list.join(', ')}, got ${String(value)}`);
  return i;
}

function nameOf<T>(list: readonly T[], n: number, what: string): T {
  const v = list[n];
  if (v === undefined) throw new MalformedMessageError(`${what} ${n} is not one of ${list.join(', ')}`);
  return v;
}

export function encodeMessage(msg: OfMessage): Buffer {
  const type = TYPE_NUMBER[msg.type];
  if (type === undefined) throw new EncodeError(`unknown OpenFlow message type "${String(msg.type)}"`);
  const w = new Writer();
  w.u8(OFP_VERSION, 'version').u8(type, 'type').u16(0, 'length').u32(msg.xid, 'xid');
  writeBody(w, msg);
  if (w.length > OFP_MAX_MESSAGE_BYTES) throw new EncodeError(`${msg.type} of ${w.length} bytes is over the ${OFP_MAX_MESSAGE_BYTES}-byte OpenFlow limit`);
  w.patchU16(2, w.length, 'length');
  return w.finish();
}

function writeBody(w: Writer, msg: OfMessage): void {
  switch (msg.type) {
    case 'hello': {
      const versions = msg.versions;
      if (versions.length === 0 || versions.some((v) => !Number.isInteger(v) || v < 1 || v > 127)) throw new EncodeError(`hello versions must be 1..127, got [${versions.join(', ')}]`);
      const words = Math.floor(Math.max(...versions) / 32) + 1;
      w.u16(HELLO_ELEM_VERSIONBITMAP, 'hello element type').u16(4 + 4 * words, 'hello element length');
      for (let i = 0; i < words; i++) {
        let bits = 0;
        for (const v of versions) if (Math.floor(v / 32) === i) bits |= 1 << (v % 32);
        w.u32(bits >>> 0, 'version bitmap');
      }
      w.pad8();
      return;
    }
    case 'error':
      w.u16(msg.errorType, 'error type').u16(msg.errorCode, 'error code').bytes(msg.data);
      return;
    case 'echo-request':
    case 'echo-reply':
      w.bytes(msg.data);
      return;
    case 'experimenter':
      w.u32(msg.experimenter, 'experimenter').u32(msg.expType, 'exp_type').bytes(msg.data);
      return;
    case 'features-request':
    case 'get-config-request':
    case 'barrier-request':
    case 'barrier-reply':
      return;
    case 'features-reply':
      w.u64(msg.datapathId, 'datapath id').u32(msg.nBuffers, 'n_buffers').u8(msg.nTables, 'n_tables').u8(msg.auxiliaryId, 'auxiliary id').zeros(2);
      w.u32(msg.capabilities, 'capabilities').zeros(4);
      return;
    case 'get-config-reply':
    case 'set-config':
      w.u16(msg.flags, 'config flags').u16(msg.missSendLen, 'miss_send_len');
      return;
    case 'packet-in':
      w.u32(msg.bufferId, 'buffer id').u16(msg.totalLen, 'total_len').u8(msg.reason, 'reason').u8(msg.tableId, 'table id').u64(msg.cookie, 'cookie');
      writeMatch(w, msg.match);
      w.zeros(2).bytes(msg.data);
      return;
    case 'flow-removed':
      w.u64(msg.cookie, 'cookie').u16(msg.priority, 'priority').u8(msg.reason, 'reason').u8(msg.tableId, 'table id');
      w.u32(msg.durationSec, 'duration_sec').u32(msg.durationNsec, 'duration_nsec').u16(msg.idleTimeout, 'idle timeout').u16(msg.hardTimeout, 'hard timeout');
      w.u64(msg.packetCount, 'packet count').u64(msg.byteCount, 'byte count');
      writeMatch(w, msg.match);
      return;
    case 'port-status':
      w.u8(indexOf(PORT_STATUS_REASONS, msg.reason, 'port-status reason'), 'reason').zeros(7);
      writePort(w, msg.port);
      return;
    case 'packet-out': {
      w.u32(msg.bufferId, 'buffer id').u32(msg.inPort, 'in port');
      const at = w.length;
      w.u16(0, 'actions length').zeros(6);
      writeActions(w, msg.actions);
      w.patchU16(at, w.length - at - 8, 'actions length');
      w.bytes(msg.data);
      return;
    }
    case 'flow-mod':
      w.u64(msg.cookie, 'cookie').u64(msg.cookieMask, 'cookie mask').u8(msg.tableId, 'table id').u8(indexOf(FLOW_MOD_COMMANDS, msg.command, 'flow-mod command'), 'command');
      w.u16(msg.idleTimeout, 'idle timeout').u16(msg.hardTimeout, 'hard timeout').u16(msg.priority, 'priority').u32(msg.bufferId, 'buffer id');
      w.u32(msg.outPort, 'out port').u32(msg.outGroup, 'out group').u16(msg.flags, 'flags').zeros(2);
      writeMatch(w, msg.match);
      writeInstructions(w, msg.instructions);
      return;
    case 'group-mod':
      w.u16(indexOf(GROUP_MOD_COMMANDS, msg.command, 'group-mod command'), 'command').u8(indexOf(GROUP_TYPES, msg.groupType, 'group type'), 'group type').zeros(1);
      w.u32(msg.groupId, 'group id');
      for (const b of msg.buckets) {
        const at = w.length;
        w.u16(0, 'bucket length').u16(b.weight, 'bucket weight').u32(b.watchPort, 'watch port').u32(b.watchGroup, 'watch group').zeros(4);
        writeActions(w, b.actions);
        w.patchU16(at, w.length - at, 'bucket length');
      }
      return;
    case 'multipart-request':
    case 'multipart-reply':
      w.u16(multipartType(msg.body), 'multipart type').u16(msg.flags, 'multipart flags').zeros(4);
      if (msg.type === 'multipart-request') writeMultipartRequest(w, msg.body);
      else writeMultipartReply(w, msg.body);
      return;
    case 'role-request':
    case 'role-reply':
      w.u32(indexOf(CONTROLLER_ROLES, msg.role, 'role'), 'role').zeros(4).u64(msg.generationId, 'generation id');
      return;
  }
}

/** Decode one whole message, buf[start, end) including its header. Never throws. */
export function decodeMessage(buf: Buffer, start = 0, end = buf.length): OfMessage | OpenFlowDecodeError {
  const type = buf[start + 1]!;
  const name = TYPE_NAME.get(type);
  if (name === undefined) return new UnknownTypeError(type);
  const r = new Reader(buf, start + OFP_HEADER_BYTES, end, name);
  const xid = buf.readUInt32BE(start + 4);
  try {
    const msg = readBody(name, xid, r);
    if (r.remaining !== 0) return new MalformedMessageError(`${name}: ${r.remaining} bytes after the end of the body`);
    return msg;
  } catch (err) {
    if (err instanceof OpenFlowDecodeError) return err;
    return new MalformedMessageError(`${name}: ${(err as Error).message}`);
  }
}

function readBody(name: OfMessageType, xid: number, r: Reader): OfMessage {
  switch (name) {
    case 'hello':
      return { type: 'hello', xid, versions: readHelloVersions(r) };
    case 'error':
      return { type: 'error', xid, errorType: r.u16('error type'), errorCode: r.u16('error code'), data: r.bytes(r.remaining, 'data') };
    case 'echo-request':
    case 'echo-reply':
      return { type: name, xid, data: r.bytes(r.remaining, 'data') };
    case 'experimenter':
      return { type: name, xid, experimenter: r.u32('experimenter'), expType: r.u32('exp_type'), data: r.bytes(r.remaining, 'data') };
    case 'features-request':
    case 'get-config-request':
    case 'barrier-request':
    case 'barrier-reply':
      return { type: name, xid };
    case 'features-reply': {
      const datapathId = r.u64('datapath id');
      const nBuffers = r.u32('n_buffers');
      const nTables = r.u8('n_tables');
      const auxiliaryId = r.u8('auxiliary id');
      r.skip(2, 'pad');
      const capabilities = r.u32('capabilities');
      r.skip(4, 'reserved');
      return { type: name, xid, datapathId, nBuffers, nTables, auxiliaryId, capabilities };
    }
    case 'get-config-reply':
    case 'set-config':
      return { type: name, xid, flags: r.u16('flags'), missSendLen: r.u16('miss_send_len') };
    case 'packet-in': {
      const bufferId = r.u32('buffer id');
      const totalLen = r.u16('total_len');
      const reason = r.u8('reason');
      const tableId = r.u8('table id');
      const cookie = r.u64('cookie');
      const match = readMatch(r);
      r.skip(2, 'pad');
      return { type: name, xid, bufferId, totalLen, reason, tableId, cookie, match, data: r.bytes(r.remaining, 'data') };
    }
    case 'flow-removed': {
      const cookie = r.u64('cookie');
      const priority = r.u16('priority');
      const reason = r.u8('reason');
      const tableId = r.u8('table id');
      const durationSec = r.u32('duration_sec');
      const durationNsec = r.u32('duration_nsec');
      const idleTimeout = r.u16('idle timeout');
      const hardTimeout = r.u16('hard timeout');
      const packetCount = r.u64('packet count');
      const byteCount = r.u64('byte count');
      const match = readMatch(r);
      return { type: name, xid, cookie, priority, reason, tableId, durationSec, durationNsec, idleTimeout, hardTimeout, packetCount, byteCount, match };
    }
    case 'port-status': {
      const reason = nameOf(PORT_STATUS_REASONS, r.u8('reason'), 'port-status reason');
      r.skip(7, 'pad');
      return { type: name, xid, reason, port: readPort(r.sub(OFP_PORT_BYTES, 'port')) };
    }
    case 'packet-out': {
      const bufferId = r.u32('buffer id');
      const inPort = r.u32('in port');
      const actionsLen = r.u16('actions length');
      r.skip(6, 'pad');
      const actions = readActions(r.sub(actionsLen, 'packet-out actions'));
      return { type: name, xid, bufferId, inPort, actions, data: r.bytes(r.remaining, 'data') };
    }
    case 'flow-mod': {
      const cookie = r.u64('cookie');
      const cookieMask = r.u64('cookie mask');
      const tableId = r.u8('table id');
      const command = nameOf(FLOW_MOD_COMMANDS, r.u8('command'), 'flow-mod command');
      const idleTimeout = r.u16('idle timeout');
      const hardTimeout = r.u16('hard timeout');
      const priority = r.u16('priority');
      const bufferId = r.u32('buffer id');
      const outPort = r.u32('out port');
      const outGroup = r.u32('out group');
      const flags = r.u16('flags');
      r.skip(2, 'pad');
      const match = readMatch(r);
      const instructions = readInstructions(r);
      return { type: name, xid, cookie, cookieMask, tableId, command, idleTimeout, hardTimeout, priority, bufferId, outPort, outGroup, flags, match, instructions };
    }
    case 'group-mod': {
      const command = nameOf(GROUP_MOD_COMMANDS, r.u16('command'), 'group-mod command');
      const groupType = nameOf(GROUP_TYPES, r.u8('group type'), 'group type');
      r.skip(1, 'pad');
      const groupId = r.u32('group id');
      const buckets = [];
      while (r.remaining > 0) {
        const len = r.u16('bucket length');
        if (len < 16) throw new MalformedMessageError(`group-mod: bucket of length ${len} (at least 16)`);
        const b = r.sub(len - 2, 'bucket');
        const weight = b.u16('weight');
        const watchPort = b.u32('watch port');
        const watchGroup = b.u32('watch group');
        b.skip(4, 'pad');
        buckets.push({ weight, watchPort, watchGroup, actions: readActions(b) });
      }
      return { type: name, xid, command, groupType, groupId, buckets };
    }
    case 'multipart-request':
    case 'multipart-reply': {
      const mpType = r.u16('multipart type');
      const flags = r.u16('multipart flags');
      r.skip(4, 'pad');
      const body = r.sub(r.remaining, `${name} ${mpType}`);
      if (name === 'multipart-request') return { type: name, xid, flags, body: readMultipartRequest(mpType, body) };
      return { type: name, xid, flags, body: readMultipartReply(mpType, body) };
    }
    case 'role-request':
    case 'role-reply': {
      const role = nameOf(CONTROLLER_ROLES, r.u32('role'), 'role');
      r.skip(4, 'pad');
      return { type: name, xid, role, generationId: r.u64('generation id') };
    }
  }
}

/** The versions of a hello's bitmap element; without one, the header's version alone. Other elements are skipped (§7.5.1). */
function readHelloVersions(r: Reader): number[] {
  const headerVersion = r.buf[r.pos - OFP_HEADER_BYTES]!;
  let versions: number[] | undefined;
  while (r.remaining >= 4) {
    const type = r.u16('hello element type');
    const len = r.u16('hello element length');
    if (len < 4) throw new MalformedMessageError(`hello: element ${type} of length ${len}`);
    const e = r.sub(len - 4, `hello element ${type}`);
    r.skip(Math.min(r.remaining, (8 - (len % 8)) % 8), 'hello element padding');
    if (type !== HELLO_ELEM_VERSIONBITMAP) continue;
    versions = [];
    for (let word = 0; e.remaining >= 4; word++) {
      const bits = e.u32('version bitmap');
      for (let bit = 0; bit < 32; bit++) if ((bits >>> bit) & 1) versions.push(word * 32 + bit);
    }
  }
  r.skip(r.remaining, 'hello trailing bytes');
  return versions ?? [headerVersion];
}
