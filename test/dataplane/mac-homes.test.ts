/**
 * MAC homes (src/dataplane/mac-homes.ts): a local port's MAC, or one the
 * controller placed, is not re-learned from elsewhere; the frame is a
 * conflict — counted, reported, still forwarded. First on the table alone,
 * then with three daemons over the in-memory transport: the forged frame
 * that used to redirect a VM's traffic, and a migration-like move through
 * the controller's rules that must still work.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, formatMac, parseMac, type Mac } from '../../src/common/mac.ts';
import type { DaemonEvent } from '../../src/control/daemon-control.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { ForwardingTable, type MacConflict } from '../../src/dataplane/forwarding-table.ts';
import { parseRule } from '../../src/dataplane/forwarding-rule.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const V = parseMac('02:00:00:00:00:01');
const W = parseMac('02:00:00:00:00:02');

function table(role: 'hub' | 'spoke') {
  const conflicts: MacConflict[] = [];
  const t = new ForwardingTable({ role, clock: new ManualClock(), onConflict: (c) => conflicts.push(c) });
  const p1 = t.addPort('p1', 'p1');
  const hub = t.addLink('hub', 'backbone', 'hub');
  const fast = t.addLink('c3', 'fast-path', 'c3');
  const other = t.addLink('c4', 'fast-path', 'c4');
  return { t, conflicts, p1, hub, fast, other };
}

const placeAt = (mac: Mac, link: string) => parseRule({ id: `vm-${formatMac(mac)}`, priority: 100, src: 'any', dst: formatMac(mac), action: { link } }, 'controller');
const learnedAt = (t: ForwardingTable, mac: Mac) => t.learned().find((l) => l.mac === mac)?.location;

describe('MAC homes in the forwarding table', () => {
  it("a local port's MAC seen over a link is a conflict: not learned, counted, reported, still forwarded", () => {
    const { t, conflicts, p1, hub } = table('spoke');
    t.setLocalMacs(new Map([[V, 'p1']]));
    t.forward(V, BROADCAST_MAC, p1);
    const eg = t.forward(V, BROADCAST_MAC, hub);
    assert.deepEqual(learnedAt(t, V), { kind: 'port', name: 'p1' }, 'still at its port');
    assert.deepEqual(eg.ports, ['p1'], 'the frame itself is forwarded');
    assert.equal(t.stats.macConflicts, 1);
    assert.deepEqual(conflicts, [{ mac: V, seenAt: 'backbone link hub', home: 'port p1', by: 'port' }]);
    t.forward(V, BROADCAST_MAC, hub);
    assert.equal(t.stats.macConflicts, 2, 'every such frame counts (the decision is cached, the source check is not skipped)');
    assert.equal(t.stats.learnedMoves, 0);
  });

  it('without a home the MAC moves as before (the old behaviour, for MACs nobody placed)', () => {
    const { t, p1, hub } = table('spoke');
    t.forward(W, BROADCAST_MAC, p1);
    t.forward(W, BROADCAST_MAC, hub);
    assert.deepEqual(learnedAt(t, W), { kind: 'link', peer: 'hub' });
    assert.equal(t.stats.macConflicts, 0);
  });

  it('a MAC learned elsewhere before it got a home is forgotten there at its next frame', () => {
    const { t, hub } = table('spoke');
    t.forward(V, BROADCAST_MAC, hub);
    assert.deepEqual(learnedAt(t, V), { kind: 'link', peer: 'hub' });
    t.setLocalMacs(new Map([[V, 'p1']]));
    t.addPort('p2', 'p2'); // any change of ports drops the cache
    t.forward(V, BROADCAST_MAC, hub);
    assert.equal(learnedAt(t, V), undefined);
    assert.equal(t.stats.macConflicts, 1);
  });

  it('on a spoke, a MAC the controller placed behind a fast-path link is learned from it or the backbone, a conflict from another link', () => {
    const { t, conflicts, hub, fast, other } = table('spoke');
    t.setRules('controller', [placeAt(V, 'c3')]);
    t.forward(V, BROADCAST_MAC, fast);
    assert.deepEqual(learnedAt(t, V), { kind: 'link', peer: 'c3' });
    t.forward(V, BROADCAST_MAC, hub);
    assert.deepEqual(learnedAt(t, V), { kind: 'link', peer: 'hub' }, 'floods relayed by the hub are legitimate');
    assert.equal(t.stats.macConflicts, 0);
    t.forward(V, W, other);
    assert.deepEqual(learnedAt(t, V), { kind: 'link', peer: 'hub' });
    assert.deepEqual(conflicts.map((c) => [c.seenAt, c.home, c.by]), [['fast-path link c4', 'fast-path link c3', 'controller']]);
  });

  it('on the hub, a MAC the controller placed behind one spoke is a conflict from any other', () => {
    const { t, conflicts, hub, other } = table('hub');
    t.setRules('controller', [placeAt(V, 'hub')]); // the link to the spoke named "hub" here
    t.forward(V, BROADCAST_MAC, other);
    assert.equal(learnedAt(t, V), undefined);
    assert.equal(conflicts.length, 1);
    t.forward(V, BROADCAST_MAC, hub);
    assert.deepEqual(learnedAt(t, V), { kind: 'link', peer: 'hub' });
  });

  it('a local port outranks a controller rule; config and admin rules place nothing', () => {
    const { t, conflicts, p1, fast } = table('spoke');
    t.setRules('config', [parseRule({ id: 'cfg', priority: 5, src: 'any', dst: formatMac(W), action: { link: 'c3' } }, 'config')]);
    t.forward(W, BROADCAST_MAC, p1);
    assert.deepEqual(learnedAt(t, W), { kind: 'port', name: 'p1' }, 'a config rule is not a home');
    t.setRules('controller', [placeAt(V, 'c3')]);
    t.setLocalMacs(new Map([[V, 'p1']]));
    t.forward(V, BROADCAST_MAC, fast);
    assert.equal(conflicts.length, 1, 'its home is the local port');
    assert.equal(conflicts[0]!.by, 'port');
  });
});

interface Vm {
  mac: Mac;
  port: MemoryPort;
  got: Buffer[];
}

function vm(name: string, mac: Mac): Vm {
  const port = new MemoryPort({ name, mac });
  const v: Vm = { mac, port, got: [] };
  port.onDeliver((f) => v.got.push(Buffer.from(f)));
  return v;
}

/** A hub and spokes s1, s2 over the in-memory transport: victim on s1, peer on the hub, attacker on s2 (`lock` as given). */
async function overlay(lock: boolean) {
  const network = new MemoryNetwork();
  const start = (hostId: string, role: 'hub' | 'spoke', hub?: { host: string; port: number }) =>
    Daemon.start(
      { logger, transport: new MemoryTransport({ logger }, { localHost: hostId, network }) },
      { hostId, role, listen: { host: hostId, port: 0 }, ...(hub !== undefined ? { hub: { ...hub, id: 'hub' } } : {}), reconnect: { initialMs: 20, maxMs: 200 } },
    );
  const hub = await start('hub', 'hub');
  const s1 = await start('s1', 'spoke', hub.listenAddress!);
  const s2 = await start('s2', 'spoke', hub.listenAddress!);
  const victim = vm('victim', V);
  const peer = vm('peer', W);
  const attacker = vm('attacker', parseMac('02:00:00:00:00:66'));
  s1.addPort(victim.port);
  hub.addPort(peer.port);
  s2.addPort(attacker.port, undefined, { security: { lock } });
  await waitFor(() => hub.facts().links.filter((l) => l.state === 'up').length === 2 && [s1, s2].every((s) => s.facts().links.some((l) => l.state === 'up')), 'spokes linked');
  const events: DaemonEvent[] = [];
  for (const d of [hub, s1, s2]) d.onEvent((e) => events.push(e));
  const close = () => Promise.all([s1.close(), s2.close(), hub.close()]);
  return { hub, s1, s2, victim, peer, attacker, events, close };
}

/** The peer pings the victim with `seq` and waits for it. */
async function reach(peer: Vm, victim: Vm, seq: number): Promise<void> {
  peer.port.transmit(testFrame(victim.mac, peer.mac, seq));
  await waitFor(() => victim.got.some((f) => seqOf(f) === seq), `frame ${seq} at the victim`);
}

describe('a forged frame across daemons', () => {
  it("with the default lock, the attacker's frame never leaves its port and the victim stays reachable", async () => {
    const o = await overlay(true);
    try {
      o.victim.port.transmit(testFrame(BROADCAST_MAC, V, 1));
      await waitFor(() => o.peer.got.length === 1, 'the victim announced');
      o.attacker.port.transmit(testFrame(BROADCAST_MAC, V, 2));
      await waitFor(() => o.s2.facts().ports[0]!.security!['spoofed-source'] === 1, 'spoofed frame counted at s2');
      await reach(o.peer, o.victim, 3);
      assert.equal(o.attacker.got.filter((f) => seqOf(f) === 3).length, 0);
      assert.deepEqual(o.hub.table.learned().find((l) => l.mac === V)?.location, { kind: 'link', peer: 's1' });
      assert.ok(o.events.some((e) => e.type === 'port-limit' && e.port === 'attacker' && e.limit === 'spoofed-source'));
    } finally {
      await o.close();
    }
  });

  it("unlocked: the victim's own host refuses to re-learn it, the hub with the controller's rule too, and reports the conflict", async () => {
    const o = await overlay(false);
    try {
      o.hub.applyRules(1, [{ id: 'vm-victim', priority: 100, src: 'any', dst: formatMac(V), action: { link: 's1' } }]);
      o.victim.port.transmit(testFrame(BROADCAST_MAC, V, 1));
      await waitFor(() => o.peer.got.length === 1, 'the victim announced');
      o.attacker.port.transmit(testFrame(BROADCAST_MAC, V, 2));
      await waitFor(() => o.hub.facts().macConflicts === 1, 'conflict counted at the hub');
      await waitFor(() => o.peer.got.some((f) => seqOf(f) === 2), 'the forged broadcast itself still delivered');
      // The hub floods it on to s1: the victim's own host sees its VM's MAC arrive over its link to the hub.
      await waitFor(() => o.s1.facts().macConflicts === 1, 'conflict counted at s1');
      assert.deepEqual(o.s1.table.learned().find((l) => l.mac === V)?.location, { kind: 'port', name: 'victim' }, 'still learned at its port on s1');
      await reach(o.peer, o.victim, 3);
      assert.deepEqual(o.hub.table.learned().find((l) => l.mac === V)?.location, { kind: 'link', peer: 's1' });
      const conflicts = o.events.filter((e) => e.type === 'mac-conflict').sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
      assert.deepEqual(conflicts, [
        { type: 'mac-conflict', mac: formatMac(V), seenAt: 'backbone link hub', home: 'port victim', by: 'port', frames: 1 },
        { type: 'mac-conflict', mac: formatMac(V), seenAt: 'backbone link s2', home: 'backbone link s1', by: 'controller', frames: 1 },
      ]);
    } finally {
      await o.close();
    }
  });

  it('a MAC moves legitimately through a held port and the controller re-pointing its rule (as a migration does)', async () => {
    const o = await overlay(true);
    try {
      o.victim.port.transmit(testFrame(BROADCAST_MAC, V, 1));
      await waitFor(() => o.peer.got.length === 1, 'the victim announced');
      // The VM moves from s1 to s2: a held port at s2, the controller points the hub at s2, s1 lets go.
      const moved = vm('victim', V);
      o.s2.addPort(moved.port, undefined, { held: true });
      o.hub.applyRules(1, [{ id: 'vm-victim', priority: 100, src: 'any', dst: formatMac(V), action: { link: 's2' } }]);
      await o.s1.removePort('victim');
      o.s2.releasePort('victim', 'port');
      assert.equal(o.s2.announce('victim'), 1);
      await waitFor(() => o.peer.got.length === 2, 'the announcement at the peer');
      await reach(o.peer, moved, 2);
      assert.deepEqual(o.hub.table.learned().find((l) => l.mac === V)?.location, { kind: 'link', peer: 's2' });
      assert.equal(o.hub.facts().macConflicts, 0);
      assert.equal(o.s2.facts().macConflicts, 0);
    } finally {
      await o.close();
    }
  });
});
