/**
 * A VM pair switched onto a fast-path link and back while traffic flows,
 * the way the controller does it (reconcile.ts): on each host a set of links
 * (the lower id dials) and a rule `dst VM → link PEER` at priority 200,
 * replacing the backbone rule at 100 — links and rules arriving in every
 * order, on each host at a different moment. Then the same undone. Every
 * frame carries a per-flow sequence number; a gap that never fills is a lost
 * frame (a late one is not). Over TCP the daemons run the native forwarder,
 * their default. Over the in-memory transport and loopback TCP.
 *
 * The loss this pins down: a link closed by one side (removed, or replaced
 * when both sides dialled) dropped whatever its peer had sent before seeing
 * the goodbye; now the closing side drains it (link.ts, link-slots.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { parseMac, formatMac, type Mac } from '../../src/common/mac.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import type { Transport } from '../../src/dataplane/transport.ts';
import type { RuleSpec } from '../../src/control/daemon-control.ts';
import { testFrame, seqOf } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 1500 };
const RECONNECT = { initialMs: 5, maxMs: 20 };
const HOST = '127.0.0.1';

/** One direction of a VM pair, as the receiver sees it. */
class Flow {
  next = 0;
  lost = 0;
  readonly missing = new Set<number>();

  receive(frame: Uint8Array): void {
    if (frame.length < 18 || ((frame[12]! << 8) | frame[13]!) !== 0x88b5) return; // not a test frame (announcements)
    const seq = seqOf(Buffer.from(frame));
    if (seq >= this.next) {
      for (let s = this.next; s < seq; s++) this.missing.add(s);
      this.lost += seq - this.next;
      this.next = seq + 1;
    } else if (this.missing.delete(seq)) this.lost--; // late, not lost
  }
}

type Step = 'linkA' | 'linkB' | 'ruleA' | 'ruleB';

/** The orders in which the two hosts' links and rules may take effect. */
const ORDERS: Step[][] = [
  ['linkA', 'linkB', 'ruleA', 'ruleB'],
  ['linkB', 'linkA', 'ruleB', 'ruleA'],
  ['ruleA', 'ruleB', 'linkA', 'linkB'],
  ['ruleB', 'ruleA', 'linkB', 'linkA'],
  ['ruleA', 'linkA', 'ruleB', 'linkB'],
  ['linkB', 'ruleB', 'linkA', 'ruleA'],
];

async function overlay(transport: (host: string) => Transport) {
  const hub = await Daemon.start({ logger, transport: transport('hub') }, { hostId: 'hub', role: 'hub', listen: { host: HOST, port: 0 } });
  const hubAt = { host: HOST, port: hub.listenAddress!.port, id: 'hub' };
  const a = await Daemon.start({ logger, transport: transport('hA') }, { hostId: 'hA', role: 'spoke', listen: { host: HOST, port: 0 }, hub: hubAt, reconnect: RECONNECT });
  const b = await Daemon.start({ logger, transport: transport('hB') }, { hostId: 'hB', role: 'spoke', listen: { host: HOST, port: 0 }, hub: hubAt, reconnect: RECONNECT });
  const pa = new MemoryPort({ name: 'vmA', mac: parseMac('02:00:00:00:00:0a') });
  const pb = new MemoryPort({ name: 'vmB', mac: parseMac('02:00:00:00:00:0b') });
  a.addPort(pa);
  b.addPort(pb);
  const toA = new Flow();
  const toB = new Flow();
  pa.onDeliver((f) => toA.receive(f));
  pb.onDeliver((f) => toB.receive(f));
  await waitFor(() => a.link('hub') && b.link('hub'), 'the backbone up');
  let seqA = 0;
  let seqB = 0;
  const send = (n: number): void => {
    for (let i = 0; i < n; i++) {
      pa.transmit(testFrame(pb.mac, pa.mac, seqA++));
      pb.transmit(testFrame(pa.mac, pb.mac, seqB++));
    }
  };
  const rule = (vm: Mac, peer: string, priority: number): RuleSpec[] => [{ id: `vm-${formatMac(vm)}`, priority, src: 'any', dst: formatMac(vm), action: { link: peer } }];
  hub.applyRules(1, [...rule(pa.mac, 'hA', 100), ...rule(pb.mac, 'hB', 100)]);
  a.applyRules(1, rule(pb.mac, 'hub', 100));
  b.applyRules(1, rule(pa.mac, 'hub', 100));
  /** Keep sending until a frame sent from now on has arrived each way. */
  const flowing = async (what: string): Promise<void> => {
    const fromA = seqA;
    const fromB = seqB;
    await waitFor(() => {
      send(1);
      return toB.next > fromA && toA.next > fromB;
    }, what);
  };
  await flowing('traffic over the backbone');
  /**
   * Frames on the old path may arrive after later ones on the new: the hub
   * relays on its native forwarder's thread, each link is read by the
   * daemon's. A gap gets a bounded time to fill before it counts as lost.
   */
  const settled = async (): Promise<{ toA: number; toB: number }> => {
    await waitFor(() => toA.lost === 0 && toB.lost === 0, 'late frames', 30_000).catch(() => undefined);
    return { toA: toA.lost, toB: toB.lost };
  };
  return {
    a, b, pa, pb, toA, toB, send, rule, flowing, settled,
    close: () => Promise.all([a.close(), b.close(), hub.close()]),
  };
}

const transports: [string, () => (host: string) => Transport][] = [
  ['memory', () => {
    const network = new MemoryNetwork();
    return (host) => new MemoryTransport({ logger }, { localHost: host, network, ...LINK });
  }],
  ['tcp', () => (host) => new TcpTransport({ logger }, { localHost: host, ...LINK })],
];

for (const [name, factory] of transports) {
  describe(`a VM pair switched onto a fast-path link and back (${name})`, { timeout: 60_000 }, () => {
    for (const bothDial of [false, true]) {
      for (const order of ORDERS) {
        it(`loses no frame: ${order.join(', ')}${bothDial ? ' (both sides dial)' : ''}`, async () => {
          const w = await overlay(factory());
          try {
            let version = 1;
            const take = async (s: Step, undo: boolean): Promise<void> => {
              version++;
              if (s === 'linkA') w.a.applyFastPathLinks(version, undo ? [] : [{ peer: 'hB', address: w.b.listenAddress!, reason: 'test', dial: true }]);
              if (s === 'linkB') w.b.applyFastPathLinks(version, undo ? [] : [{ peer: 'hA', address: w.a.listenAddress!, reason: 'test', dial: bothDial }]);
              if (s === 'ruleA') w.a.applyRules(version, undo ? w.rule(w.pb.mac, 'hub', 100) : w.rule(w.pb.mac, 'hB', 200));
              if (s === 'ruleB') w.b.applyRules(version, undo ? w.rule(w.pa.mac, 'hub', 100) : w.rule(w.pa.mac, 'hA', 200));
              // Traffic while the change spreads: a few turns of the event loop (bounded, no timer).
              for (let i = 0; i < 5; i++) {
                w.send(3);
                await new Promise((r) => setImmediate(r));
              }
            };
            for (const s of order) await take(s, false);
            await waitFor(() => w.a.link('hB') && w.b.link('hA'), 'the fast-path link up at both ends');
            await w.flowing('traffic over the fast path');
            assert.deepEqual(await w.settled(), { toA: 0, toB: 0 }, 'nothing lost switching onto the fast path');
            for (const s of order) await take(s, true);
            await waitFor(() => w.a.link('hB') === undefined && w.b.link('hA') === undefined, 'the fast-path link gone at both ends');
            await w.flowing('traffic back over the backbone');
            assert.deepEqual(await w.settled(), { toA: 0, toB: 0 }, 'nothing lost switching back to the backbone');
          } finally {
            await w.close();
          }
        });
      }
    }
  });
}
