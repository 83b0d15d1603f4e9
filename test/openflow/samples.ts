import { OFPP, OFPFF, OFPG_ANY, OFP_NO_BUFFER, flowMod, type OfMessage } from '../../src/openflow/messages.ts';
import { OFPVID_PRESENT } from '../../src/openflow/oxm.ts';
import { OFPMPF_MORE } from '../../src/openflow/multipart.ts';
import type { PortDesc } from '../../src/openflow/port.ts';

/** One message of every type the codec speaks, with most fields away from their defaults. */

export const PORT: PortDesc = {
  portNo: 3,
  hwAddr: '02:00:00:00:00:03',
  name: 'vm-a',
  config: 0,
  state: 4,
  curr: 0x802,
  advertised: 0,
  supported: 0,
  peer: 0,
  currSpeed: 10_000_000,
  maxSpeed: 0,
};

const FRAME = Buffer.from('ffffffffffff0200000000010806000108000604000102000000000a0a000001000000000000000a000002', 'hex');

export const FLOW_ADD = flowMod({
  xid: 0x10,
  cookie: 0x1234_5678_9abc_def0n,
  tableId: 0,
  priority: 100,
  idleTimeout: 30,
  hardTimeout: 300,
  flags: OFPFF.sendFlowRem | OFPFF.checkOverlap,
  match: {
    inPort: 3,
    ethDst: { value: '02:00:00:00:00:00', mask: 'ff:ff:ff:00:00:00' },
    ethSrc: '02:00:00:00:00:01',
    ethType: 0x0800,
    vlanVid: OFPVID_PRESENT | 10,
    ipProto: 6,
    ipv4Src: { value: '10.1.0.0', mask: '255.255.0.0' },
    ipv4Dst: '10.2.0.1',
    tcpDst: 443,
    tunnelId: 0x5000n,
  },
  instructions: [
    {
      type: 'apply-actions',
      actions: [
        { type: 'pop-vlan' },
        { type: 'set-field', field: { ethDst: '02:00:00:00:00:09' } },
        { type: 'push-vlan', ethertype: 0x8100 },
        { type: 'set-field', field: { vlanVid: OFPVID_PRESENT | 20 } },
        { type: 'output', port: 7, maxLen: 0 },
        { type: 'output', port: OFPP.controller, maxLen: 128 },
      ],
    },
    { type: 'write-actions', actions: [{ type: 'group', groupId: 5 }] },
    { type: 'goto-table', tableId: 1 },
  ],
});

export const SAMPLES: readonly OfMessage[] = [
  { type: 'hello', xid: 1, versions: [1, 4] },
  { type: 'error', xid: 2, errorType: 1, errorCode: 1, data: Buffer.from('0403000800000002', 'hex') },
  { type: 'echo-request', xid: 3, data: Buffer.from('ping') },
  { type: 'echo-reply', xid: 3, data: Buffer.from('ping') },
  { type: 'experimenter', xid: 4, experimenter: 0x2320, expType: 20, data: Buffer.from('000000000000002a', 'hex') },
  { type: 'features-request', xid: 5 },
  { type: 'features-reply', xid: 5, datapathId: 0x0000_0000_0000_abcdn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f },
  { type: 'get-config-request', xid: 6 },
  { type: 'get-config-reply', xid: 6, flags: 0, missSendLen: 128 },
  { type: 'set-config', xid: 7, flags: 0, missSendLen: 0xffff },
  { type: 'packet-in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: FRAME.length, reason: 1, tableId: 0, cookie: 0x99n, match: { inPort: 3 }, data: FRAME },
  {
    type: 'flow-removed',
    xid: 0,
    cookie: 0x42n,
    priority: 100,
    reason: 0,
    tableId: 0,
    durationSec: 12,
    durationNsec: 500,
    idleTimeout: 10,
    hardTimeout: 0,
    packetCount: 7n,
    byteCount: 700n,
    match: { ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02' },
  },
  { type: 'port-status', xid: 0, reason: 'add', port: PORT },
  { type: 'packet-out', xid: 8, bufferId: OFP_NO_BUFFER, inPort: OFPP.controller, actions: [{ type: 'output', port: OFPP.flood, maxLen: 0 }], data: FRAME },
  FLOW_ADD,
  flowMod({ xid: 0x11, command: 'modify-strict', priority: 100, match: { inPort: 3, ethSrc: '02:00:00:00:00:01' }, instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 4, maxLen: 0 }] }] }),
  flowMod({ xid: 0x12, command: 'delete', tableId: 0xff, cookie: 0x100n, cookieMask: 0xff00n, outPort: 7 }),
  flowMod({ xid: 0x13, command: 'delete-strict', priority: 10, match: { ethDst: '02:00:00:00:00:02' } }),
  {
    type: 'group-mod',
    xid: 9,
    command: 'add',
    groupType: 'select',
    groupId: 5,
    buckets: [
      { weight: 1, watchPort: OFPP.any, watchGroup: OFPG_ANY, actions: [{ type: 'output', port: 1, maxLen: 0 }] },
      { weight: 2, watchPort: OFPP.any, watchGroup: OFPG_ANY, actions: [{ type: 'set-field', field: { tunnelId: 7n } }, { type: 'output', port: 2, maxLen: 0 }] },
    ],
  },
  { type: 'multipart-request', xid: 10, flags: 0, body: { kind: 'desc' } },
  { type: 'multipart-reply', xid: 10, flags: 0, body: { kind: 'desc', mfrDesc: 'vnet', hwDesc: 'test', swDesc: '1.0', serialNum: 'None', dpDesc: 'br0' } },
  { type: 'multipart-request', xid: 11, flags: 0, body: { kind: 'flow', tableId: 0xff, outPort: OFPP.any, outGroup: OFPG_ANY, cookie: 0n, cookieMask: 0n, match: {} } },
  {
    type: 'multipart-reply',
    xid: 11,
    flags: OFPMPF_MORE,
    body: {
      kind: 'flow',
      flows: [
        {
          tableId: 0,
          durationSec: 3,
          durationNsec: 1000,
          priority: 100,
          idleTimeout: 0,
          hardTimeout: 0,
          flags: 0,
          cookie: 0x1n,
          packetCount: 10n,
          byteCount: 1000n,
          match: { ethDst: '02:00:00:00:00:02' },
          instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 2, maxLen: 0 }] }],
        },
      ],
    },
  },
  { type: 'multipart-request', xid: 12, flags: 0, body: { kind: 'aggregate', tableId: 0xff, outPort: OFPP.any, outGroup: OFPG_ANY, cookie: 0x1n, cookieMask: 0xffn, match: { inPort: 1 } } },
  { type: 'multipart-reply', xid: 12, flags: 0, body: { kind: 'aggregate', packetCount: 5n, byteCount: 500n, flowCount: 2 } },
  { type: 'multipart-request', xid: 13, flags: 0, body: { kind: 'port-stats', portNo: OFPP.any } },
  {
    type: 'multipart-reply',
    xid: 13,
    flags: 0,
    body: {
      kind: 'port-stats',
      ports: [
        { portNo: 1, rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 4n, rxDropped: 0n, txDropped: 0n, rxErrors: 0n, txErrors: 0n, rxFrameErr: 0n, rxOverErr: 0n, rxCrcErr: 0n, collisions: 0n, durationSec: 9, durationNsec: 0 },
      ],
    },
  },
  { type: 'multipart-request', xid: 14, flags: 0, body: { kind: 'port-desc' } },
  { type: 'multipart-reply', xid: 14, flags: 0, body: { kind: 'port-desc', ports: [PORT, { ...PORT, portNo: OFPP.local, name: 'br0', hwAddr: '02:00:00:00:00:ff' }] } },
  { type: 'multipart-request', xid: 15, flags: 0, body: { kind: 'table-features', tables: [] } },
  {
    type: 'multipart-reply',
    xid: 15,
    flags: 0,
    body: { kind: 'table-features', tables: [{ tableId: 0, name: 'classifier', metadataMatch: 0xffffffffffffffffn, metadataWrite: 0xffffffffffffffffn, config: 0, maxEntries: 1_000_000, properties: [{ type: 2, body: Buffer.from([0, 1, 0, 4]) }] }] },
  },
  { type: 'multipart-request', xid: 16, flags: 0, body: { kind: 'raw', multipartType: 6, body: Buffer.from('ffffffff00000000', 'hex') } },
  { type: 'barrier-request', xid: 17 },
  { type: 'barrier-reply', xid: 17 },
  { type: 'role-request', xid: 18, role: 'master', generationId: 3n },
  { type: 'role-reply', xid: 18, role: 'slave', generationId: 3n },
];
