import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OpenFlowDecoder } from '../../src/openflow/decoder.ts';
import { decodeMessage, encodeMessage } from '../../src/openflow/message-codec.ts';
import { OFPP, type OfMessage } from '../../src/openflow/messages.ts';

/**
 * What Open vSwitch 3.1 itself put on the wire, in the unit tier: every
 * message ovs-vswitchd sent to a controller during a session like
 * ovs-live.priv.test.ts's (recorded through its proxy, table features left
 * out for size), one "type hex" a line. The privileged test checks the same
 * against the live switch; this keeps the check where Open vSwitch is not
 * installed.
 */
const LINES = readFileSync(new URL('./fixtures/ovs-3.1-switch-messages.txt', import.meta.url), 'utf8')
  .trim()
  .split('\n')
  .map((l) => {
    const [label, hex] = l.split(' ');
    return { label: label!, bytes: Buffer.from(hex!, 'hex') };
  });

function decoded(): OfMessage[] {
  return LINES.map(({ bytes }) => {
    const m = decodeMessage(bytes);
    assert.ok(!(m instanceof Error), String(m));
    return m;
  });
}

describe("Open vSwitch 3.1's own messages", () => {
  it('each decodes to its type and re-encodes byte for byte', () => {
    for (const { label, bytes } of LINES) {
      const m = decodeMessage(bytes);
      assert.ok(!(m instanceof Error), `${label}: ${String(m)}`);
      assert.equal(m.type === 'multipart-reply' ? `multipart-reply/${m.body.kind}` : m.type, label);
      assert.equal(encodeMessage(m).toString('hex'), bytes.toString('hex'), label);
    }
  });

  it('decode to what ovs-ofctl prints for them', () => {
    const all = decoded();
    const desc = all.find((m) => m.type === 'multipart-reply' && m.body.kind === 'desc');
    assert.ok(desc?.type === 'multipart-reply' && desc.body.kind === 'desc' && desc.body.mfrDesc === 'Nicira, Inc.' && desc.body.hwDesc === 'Open vSwitch' && desc.body.swDesc === '3.1.0');
    const stats = all.find((m) => m.type === 'multipart-reply' && m.body.kind === 'flow');
    assert.ok(stats?.type === 'multipart-reply' && stats.body.kind === 'flow');
    const byCookie = new Map(stats.body.flows.map((f) => [f.cookie, f]));
    assert.deepEqual(byCookie.get(0x78n)?.match, { ethType: 0x0800, ipProto: 6, tunnelId: 0x5000n, ipv4Src: { value: '10.1.0.0', mask: '255.255.0.0' }, tcpDst: 443 });
    assert.deepEqual(byCookie.get(0x79n)?.instructions, [{ type: 'apply-actions', actions: [{ type: 'pop-vlan' }, { type: 'output', port: OFPP.controller, maxLen: 64 }] }]);
    assert.deepEqual(byCookie.get(0x7an)?.match, { ethType: 0x86dd, ipv6Dst: { value: 'fd00::', mask: 'ffff::' } });
    assert.deepEqual(byCookie.get(0x7bn)?.instructions, [{ type: 'write-actions', actions: [{ type: 'output', port: 4, maxLen: 0 }] }, { type: 'goto-table', tableId: 2 }]);
    assert.deepEqual(byCookie.get(0x7cn)?.instructions, [{ type: 'apply-actions', actions: [{ type: 'group', groupId: 1 }] }]);
    const error = all.find((m) => m.type === 'error');
    assert.ok(error?.type === 'error' && error.errorType === 3 && error.errorCode === 2, 'OFPBIC_BAD_TABLE_ID for a goto-table backwards');
    const pin = all.find((m) => m.type === 'packet-in');
    assert.ok(pin?.type === 'packet-in' && pin.match.inPort === OFPP.controller && pin.reason === 1 && pin.data.length === pin.totalLen);
    const removed = all.find((m) => m.type === 'flow-removed');
    assert.ok(removed?.type === 'flow-removed' && removed.cookie === 0x7an && removed.reason === 2, 'FLOW_REMOVED by delete');
    const status = all.find((m) => m.type === 'port-status');
    assert.ok(status?.type === 'port-status' && status.reason === 'add' && status.port.portNo === 9);
  });

  it('the whole session decodes the same at every split of the stream', () => {
    const stream = Buffer.concat(LINES.map((l) => l.bytes));
    const want = decoded();
    for (let cut = 0; cut <= stream.length; cut++) {
      const got: OfMessage[] = [];
      const dec = new OpenFlowDecoder({ onMessage: (m) => got.push(m), onDecodeError: (e) => assert.fail(`cut at ${cut}: ${e.message}`) });
      dec.push(stream.subarray(0, cut));
      dec.push(stream.subarray(cut));
      assert.equal(got.length, want.length, `cut at ${cut}`);
    }
  });
});
