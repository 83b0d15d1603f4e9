import type { Action, Instruction } from './actions.ts';
import type { Match } from './oxm.ts';
import type { MultipartReplyBody, MultipartRequestBody } from './multipart.ts';
import type { PortDesc } from './port.ts';

/**
 * The OpenFlow 1.3 messages this codec speaks, as plain objects. 64-bit
 * fields (datapath ids, cookies, counters) are bigints; everything else is a
 * number. `xid` is the transaction id a reply echoes.
 */

export const OFP_VERSION = 0x04;
export const OFP_HEADER_BYTES = 8;
/** The largest OpenFlow message (the length field is 16 bits). */
export const OFP_MAX_MESSAGE_BYTES = 0xffff;

export const OFPT = {
  hello: 0,
  error: 1,
  echoRequest: 2,
  echoReply: 3,
  experimenter: 4,
  featuresRequest: 5,
  featuresReply: 6,
  getConfigRequest: 7,
  getConfigReply: 8,
  setConfig: 9,
  packetIn: 10,
  flowRemoved: 11,
  portStatus: 12,
  packetOut: 13,
  flowMod: 14,
  groupMod: 15,
  multipartRequest: 18,
  multipartReply: 19,
  barrierRequest: 20,
  barrierReply: 21,
  roleRequest: 24,
  roleReply: 25,
} as const;

/** Reserved port numbers (ofp_port_no). */
export const OFPP = {
  max: 0xffffff00,
  inPort: 0xfffffff8,
  table: 0xfffffff9,
  normal: 0xfffffffa,
  flood: 0xfffffffb,
  all: 0xfffffffc,
  controller: 0xfffffffd,
  local: 0xfffffffe,
  any: 0xffffffff,
} as const;

export const OFP_NO_BUFFER = 0xffffffff;
export const OFPG_ANY = 0xffffffff;
export const OFPTT_ALL = 0xff;

export const FLOW_MOD_COMMANDS = ['add', 'modify', 'modify-strict', 'delete', 'delete-strict'] as const;
export type FlowModCommand = (typeof FLOW_MOD_COMMANDS)[number];

/** ofp_flow_mod_flags. */
export const OFPFF = { sendFlowRem: 1, checkOverlap: 2, resetCounts: 4, noPktCounts: 8, noBytCounts: 16 } as const;

export const GROUP_MOD_COMMANDS = ['add', 'modify', 'delete'] as const;
export type GroupModCommand = (typeof GROUP_MOD_COMMANDS)[number];
export const GROUP_TYPES = ['all', 'select', 'indirect', 'fast-failover'] as const;
export type GroupType = (typeof GROUP_TYPES)[number];

export const CONTROLLER_ROLES = ['nochange', 'equal', 'master', 'slave'] as const;
export type ControllerRole = (typeof CONTROLLER_ROLES)[number];

export const PORT_STATUS_REASONS = ['add', 'delete', 'modify'] as const;
export type PortStatusReason = (typeof PORT_STATUS_REASONS)[number];

export interface FlowMod {
  cookie: bigint;
  cookieMask: bigint;
  tableId: number;
  command: FlowModCommand;
  idleTimeout: number;
  hardTimeout: number;
  priority: number;
  bufferId: number;
  /** Delete commands: only flows that output to this port (OFPP.any: all). */
  outPort: number;
  outGroup: number;
  /** OFPFF bits. */
  flags: number;
  match: Match;
  instructions: Instruction[];
}

export interface Bucket {
  weight: number;
  watchPort: number;
  watchGroup: number;
  actions: Action[];
}

export type OfMessage = { xid: number } & (
  | { type: 'hello'; /** Versions offered in the bitmap (the header's version alone when there is none). */ versions: number[] }
  | { type: 'error'; errorType: number; errorCode: number; data: Buffer }
  | { type: 'echo-request'; data: Buffer }
  | { type: 'echo-reply'; data: Buffer }
  | { type: 'experimenter'; experimenter: number; expType: number; data: Buffer }
  | { type: 'features-request' }
  | { type: 'features-reply'; datapathId: bigint; nBuffers: number; nTables: number; auxiliaryId: number; capabilities: number }
  | { type: 'get-config-request' }
  | { type: 'get-config-reply'; flags: number; missSendLen: number }
  | { type: 'set-config'; flags: number; missSendLen: number }
  | { type: 'packet-in'; bufferId: number; totalLen: number; reason: number; tableId: number; cookie: bigint; match: Match; data: Buffer }
  | {
      type: 'flow-removed';
      cookie: bigint;
      priority: number;
      reason: number;
      tableId: number;
      durationSec: number;
      durationNsec: number;
      idleTimeout: number;
      hardTimeout: number;
      packetCount: bigint;
      byteCount: bigint;
      match: Match;
    }
  | { type: 'port-status'; reason: PortStatusReason; port: PortDesc }
  | { type: 'packet-out'; bufferId: number; inPort: number; actions: Action[]; data: Buffer }
  | ({ type: 'flow-mod' } & FlowMod)
  | { type: 'group-mod'; command: GroupModCommand; groupType: GroupType; groupId: number; buckets: Bucket[] }
  | { type: 'multipart-request'; flags: number; body: MultipartRequestBody }
  | { type: 'multipart-reply'; flags: number; body: MultipartReplyBody }
  | { type: 'barrier-request' }
  | { type: 'barrier-reply' }
  | { type: 'role-request'; role: ControllerRole; generationId: bigint }
  | { type: 'role-reply'; role: ControllerRole; generationId: bigint }
);

export type OfMessageType = OfMessage['type'];
export type OfMessageOf<T extends OfMessageType> = Extract<OfMessage, { type: T }>;

/** A flow mod with the defaults filled in: add, table 0, priority 0x8000, no timeouts, no buffer, any port and group. */
export function flowMod(fields: Partial<FlowMod> & { xid?: number }): OfMessageOf<'flow-mod'> {
  return {
    type: 'flow-mod',
    xid: fields.xid ?? 0,
    cookie: fields.cookie ?? 0n,
    cookieMask: fields.cookieMask ?? 0n,
    tableId: fields.tableId ?? 0,
    command: fields.command ?? 'add',
    idleTimeout: fields.idleTimeout ?? 0,
    hardTimeout: fields.hardTimeout ?? 0,
    priority: fields.priority ?? 0x8000,
    bufferId: fields.bufferId ?? OFP_NO_BUFFER,
    outPort: fields.outPort ?? OFPP.any,
    outGroup: fields.outGroup ?? OFPG_ANY,
    flags: fields.flags ?? 0,
    match: fields.match ?? {},
    instructions: fields.instructions ?? [],
  };
}
