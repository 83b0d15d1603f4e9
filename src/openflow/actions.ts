import { EncodeError, MalformedMessageError } from './errors.ts';
import { readOxmFields, writeOxmFields, type Match } from './oxm.ts';
import { Reader, Writer } from './wire.ts';

/**
 * Actions (OpenFlow 1.3 §7.2.5) and instructions (§7.2.4). The actions a
 * forwarding controller needs are typed; any other action or instruction
 * (experimenter, MPLS, TTL copies) is kept raw so a switch's flow tables
 * decode and re-encode unchanged.
 */

export const OFPAT = {
  output: 0,
  setQueue: 21,
  group: 22,
  decNwTtl: 24,
  pushVlan: 17,
  popVlan: 18,
  setField: 25,
} as const;

export const OFPIT = { gotoTable: 1, writeMetadata: 2, writeActions: 3, applyActions: 4, clearActions: 5, meter: 6 } as const;

/** Send the whole packet to the controller (ofp_action_output.max_len). */
export const OFPCML_NO_BUFFER = 0xffff;

export type Action =
  | { type: 'output'; port: number; maxLen?: number }
  | { type: 'group'; groupId: number }
  | { type: 'set-queue'; queueId: number }
  | { type: 'push-vlan'; ethertype: number }
  | { type: 'pop-vlan' }
  | { type: 'dec-nw-ttl' }
  /** One OXM field to rewrite, unmasked (e.g. `{ ethDst: '02:…' }`, `{ vlanVid: 0x1000 | 10 }`). */
  | { type: 'set-field'; field: Match }
  | { type: 'raw'; actionType: number; body: Buffer };

export type Instruction =
  | { type: 'goto-table'; tableId: number }
  | { type: 'write-metadata'; metadata: bigint; mask: bigint }
  | { type: 'write-actions'; actions: Action[] }
  | { type: 'apply-actions'; actions: Action[] }
  | { type: 'clear-actions' }
  | { type: 'meter'; meterId: number }
  | { type: 'raw'; instructionType: number; body: Buffer };

function begin(w: Writer, type: number): number {
  const start = w.length;
  w.u16(type, 'type').u16(0, 'length');
  return start;
}

function end(w: Writer, start: number): void {
  w.patchU16(start + 2, w.length - start, 'length');
}

/** An 8-byte action: type, length 8, four bytes of body. */
function short(w: Writer, type: number, body: () => void): void {
  const at = begin(w, type);
  body();
  end(w, at);
}

export function writeAction(w: Writer, a: Action): void {
  switch (a.type) {
    case 'output': {
      const at = begin(w, OFPAT.output);
      w.u32(a.port, 'output port').u16(a.maxLen ?? OFPCML_NO_BUFFER, 'output max_len').zeros(6);
      return end(w, at);
    }
    case 'group':
      return short(w, OFPAT.group, () => w.u32(a.groupId, 'group id'));
    case 'set-queue':
      return short(w, OFPAT.setQueue, () => w.u32(a.queueId, 'queue id'));
    case 'push-vlan':
      return short(w, OFPAT.pushVlan, () => w.u16(a.ethertype, 'push-vlan ethertype').zeros(2));
    case 'pop-vlan':
      return short(w, OFPAT.popVlan, () => w.zeros(4));
    case 'dec-nw-ttl':
      return short(w, OFPAT.decNwTtl, () => w.zeros(4));
    case 'set-field': {
      const fields = Object.keys(a.field).filter((k) => k !== 'other');
      if (fields.length + (a.field.other?.length ?? 0) !== 1) throw new EncodeError(`a set-field action sets exactly one field, got ${fields.length}`);
      const v = (a.field as Record<string, unknown>)[fields[0] ?? ''];
      if (typeof v === 'object' && v !== null && 'mask' in v) throw new EncodeError('a set-field action cannot carry a mask in OpenFlow 1.3');
      const at = begin(w, OFPAT.setField);
      writeOxmFields(w, a.field);
      w.pad8();
      return end(w, at);
    }
    case 'raw': {
      if ((a.body.length + 4) % 8 !== 0) throw new EncodeError(`raw action ${a.actionType}: body of ${a.body.length} bytes does not make a multiple of 8`);
      const at = begin(w, a.actionType);
      w.bytes(a.body);
      return end(w, at);
    }
    default:
      throw new EncodeError(`unknown action type ${(a as { type: unknown }).type as string}`);
  }
}

export function writeActions(w: Writer, actions: readonly Action[]): void {
  for (const a of actions) writeAction(w, a);
}

function readAction(r: Reader): Action {
  const type = r.u16('action type');
  const len = r.u16('action length');
  if (len < 8 || len % 8 !== 0) throw new MalformedMessageError(`${r.what}: action ${type} has length ${len} (must be a multiple of 8, at least 8)`);
  const b = r.sub(len - 4, `action ${type}`);
  const fixed = (want: number): void => {
    if (len !== want) throw new MalformedMessageError(`${r.what}: action ${type} has length ${len}, expected ${want}`);
  };
  switch (type) {
    case OFPAT.output:
      fixed(16);
      return { type: 'output', port: b.u32('output port'), maxLen: b.u16('output max_len') };
    case OFPAT.group:
      fixed(8);
      return { type: 'group', groupId: b.u32('group id') };
    case OFPAT.setQueue:
      fixed(8);
      return { type: 'set-queue', queueId: b.u32('queue id') };
    case OFPAT.pushVlan:
      fixed(8);
      return { type: 'push-vlan', ethertype: b.u16('push-vlan ethertype') };
    case OFPAT.popVlan:
      fixed(8);
      return { type: 'pop-vlan' };
    case OFPAT.decNwTtl:
      fixed(8);
      return { type: 'dec-nw-ttl' };
    case OFPAT.setField: {
      const oxmLen = b.buf[b.pos + 3];
      if (b.remaining < 4 || oxmLen === undefined) throw new MalformedMessageError(`${r.what}: set-field action without an OXM field`);
      if (4 + oxmLen > b.remaining) throw new MalformedMessageError(`${r.what}: set-field OXM of ${oxmLen} bytes overruns the action`);
      const field = readOxmFields(b.sub(4 + oxmLen, 'set-field'));
      if (b.buf.subarray(b.pos, b.end).some((x) => x !== 0)) throw new MalformedMessageError(`${r.what}: set-field padding is not zero`);
      return { type: 'set-field', field };
    }
    default:
      return { type: 'raw', actionType: type, body: b.bytes(b.remaining, 'action body') };
  }
}

export function readActions(r: Reader): Action[] {
  const out: Action[] = [];
  while (r.remaining > 0) out.push(readAction(r));
  return out;
}

export function writeInstructions(w: Writer, instructions: readonly Instruction[]): void {
  for (const ins of instructions) {
    switch (ins.type) {
      case 'goto-table': {
        const at = begin(w, OFPIT.gotoTable);
        w.u8(ins.tableId, 'goto-table table id').zeros(3);
        end(w, at);
        break;
      }
      case 'write-metadata': {
        const at = begin(w, OFPIT.writeMetadata);
        w.zeros(4).u64(ins.metadata, 'metadata').u64(ins.mask, 'metadata mask');
        end(w, at);
        break;
      }
      case 'write-actions':
      case 'apply-actions': {
        const at = begin(w, ins.type === 'write-actions' ? OFPIT.writeActions : OFPIT.applyActions);
        w.zeros(4);
        writeActions(w, ins.actions);
        end(w, at);
        break;
      }
      case 'clear-actions': {
        const at = begin(w, OFPIT.clearActions);
        w.zeros(4);
        end(w, at);
        break;
      }
      case 'meter': {
        const at = begin(w, OFPIT.meter);
        w.u32(ins.meterId, 'meter id');
        end(w, at);
        break;
      }
      case 'raw': {
        if ((ins.body.length + 4) % 8 !== 0) throw new EncodeError(`raw instruction ${ins.instructionType}: body of ${ins.body.length} bytes does not make a multiple of 8`);
        const at = begin(w, ins.instructionType);
        w.bytes(ins.body);
        end(w, at);
        break;
      }
      default:
        throw new EncodeError(`unknown instruction type ${(ins as { type: unknown }).type as string}`);
    }
  }
}

export function readInstructions(r: Reader): Instruction[] {
  const out: Instruction[] = [];
  while (r.remaining > 0) {
    const type = r.u16('instruction type');
    const len = r.u16('instruction length');
    if (len < 8 || len % 8 !== 0) throw new MalformedMessageError(`${r.what}: instruction ${type} has length ${len} (must be a multiple of 8, at least 8)`);
    const b = r.sub(len - 4, `instruction ${type}`);
    const fixed = (want: number): void => {
      if (len !== want) throw new MalformedMessageError(`${r.what}: instruction ${type} has length ${len}, expected ${want}`);
    };
    switch (type) {
      case OFPIT.gotoTable:
        fixed(8);
        out.push({ type: 'goto-table', tableId: b.u8('goto-table table id') });
        break;
      case OFPIT.writeMetadata:
        fixed(24);
        b.skip(4, 'pad');
        out.push({ type: 'write-metadata', metadata: b.u64('metadata'), mask: b.u64('metadata mask') });
        break;
      case OFPIT.writeActions:
      case OFPIT.applyActions:
        b.skip(4, 'pad');
        out.push({ type: type === OFPIT.writeActions ? 'write-actions' : 'apply-actions', actions: readActions(b) });
        break;
      case OFPIT.clearActions:
        fixed(8);
        out.push({ type: 'clear-actions' });
        break;
      case OFPIT.meter:
        fixed(8);
        out.push({ type: 'meter', meterId: b.u32('meter id') });
        break;
      default:
        out.push({ type: 'raw', instructionType: type, body: b.bytes(b.remaining, 'instruction body') });
    }
  }
  return out;
}
