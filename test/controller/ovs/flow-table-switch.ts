import { FakeSwitch } from '../../openflow/fake-switch.ts';
import { flowKey } from '../../../src/controller/ovs/flow-plan.ts';
import type { OfMessage } from '../../../src/openflow/messages.ts';
import type { FlowStats, PortStats } from '../../../src/openflow/multipart.ts';
import { OFPTT_ALL } from '../../../src/openflow/messages.ts';

/**
 * A switch with a flow table, over loopback and the real codec (the
 * scripted FakeSwitch of test/openflow underneath): FLOW_MOD add (an
 * identical table, priority and match replaces the flow and keeps its
 * counters, as OpenFlow 1.3 §6.4 and OVS do) and delete (by cookie and
 * mask, any match), flow statistics filtered by table and cookie, barriers.
 * `rejectFlowMods` answers every FLOW_MOD with an OFPT_ERROR; `count` adds
 * traffic to a flow, as frames through it would.
 */
export class FlowTableSwitch {
  readonly flows = new Map<string, FlowStats>();
  readonly mods: Array<OfMessage & { type: 'flow-mod' }> = [];
  /** What port statistics requests are answered with. */
  portStats: PortStats[] = [];
  rejectFlowMods = false;
  /** Flow-statistics requests wait here while set (a switch slow to answer), answered by `release`. */
  holdFlowStats = false;
  readonly #held: Array<OfMessage & { type: 'multipart-request' }> = [];
  readonly sw: FakeSwitch;

  constructor(port: number, datapathId: bigint, initial: readonly FlowStats[] = []) {
    for (const f of initial) this.flows.set(flowKey(f), { ...f });
    this.sw = new FakeSwitch({ port, datapathId, onMessage: (m, sw) => this.#on(m, sw) });
  }

  get closed(): boolean {
    return this.sw.closed;
  }

  close(): void {
    this.sw.close();
  }

  /** Flows of a table, sorted by key. */
  table(tableId: number): FlowStats[] {
    return [...this.flows.values()].filter((f) => f.tableId === tableId).sort((a, b) => (flowKey(a) < flowKey(b) ? -1 : 1));
  }

  /** Answer the held flow-statistics requests and stop holding. */
  release(): void {
    this.holdFlowStats = false;
    for (const m of this.#held.splice(0)) this.#flowStats(m);
  }

  count(match: (f: FlowStats) => boolean, packets: number, bytes: number): void {
    for (const f of this.flows.values()) {
      if (!match(f)) continue;
      f.packetCount += BigInt(packets);
      f.byteCount += BigInt(bytes);
    }
  }

  #on(m: OfMessage, sw: FakeSwitch): void {
    if (m.type === 'flow-mod') {
      this.mods.push(m);
      if (this.rejectFlowMods) {
        sw.send({ type: 'error', xid: m.xid, errorType: 5, errorCode: 0, data: Buffer.alloc(0) });
        return;
      }
      if (m.command === 'add') {
        const key = flowKey(m);
        const old = this.flows.get(key);
        this.flows.set(key, {
          tableId: m.tableId, durationSec: 0, durationNsec: 0, priority: m.priority, idleTimeout: m.idleTimeout, hardTimeout: m.hardTimeout, flags: m.flags,
          cookie: m.cookie, packetCount: old?.packetCount ?? 0n, byteCount: old?.byteCount ?? 0n, match: m.match, instructions: m.instructions,
        });
      } else if (m.command === 'delete') {
        for (const [k, f] of this.flows) {
          if ((m.tableId === OFPTT_ALL || f.tableId === m.tableId) && (f.cookie & m.cookieMask) === (m.cookie & m.cookieMask)) this.flows.delete(k);
        }
      }
      return;
    }
    if (m.type === 'multipart-request' && m.body.kind === 'flow') {
      if (this.holdFlowStats) this.#held.push(m);
      else this.#flowStats(m);
    } else if (m.type === 'multipart-request' && m.body.kind === 'port-stats') {
      sw.send({ type: 'multipart-reply', xid: m.xid, flags: 0, body: { kind: 'port-stats', ports: this.portStats } });
    }
  }

  #flowStats(m: OfMessage & { type: 'multipart-request' }): void {
    const req = m.body;
    if (req.kind !== 'flow') return;
    const flows = [...this.flows.values()].filter((f) => (req.tableId === OFPTT_ALL || f.tableId === req.tableId) && (f.cookie & req.cookieMask) === (req.cookie & req.cookieMask));
    this.sw.send({ type: 'multipart-reply', xid: m.xid, flags: 0, body: { kind: 'flow', flows } });
  }
}
