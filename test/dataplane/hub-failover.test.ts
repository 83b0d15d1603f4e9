/**
 * Hub failover in the data plane, in virtual time: the rotation's decisions
 * (hub-rotation.ts), then whole daemons on memory transports, each with a
 * manual clock. A hub "killed" closes; a hub "stopped" (SIGSTOP) keeps its
 * sockets but its clock no longer moves, so it sends nothing, as a frozen
 * process would. Spokes must reach the standby hub, stay on it when the
 * primary returns, reach each other across the trunk whichever hub each is
 * on, deliver every frame once, and keep fast-path traffic (ARP included)
 * flowing without any hub.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, parseMac } from '../../src/common/mac.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { HubRotation } from '../../src/dataplane/hub-rotation.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const POLICY = { initialMs: 200, maxMs: 2000 };
const H1 = { id: 'h1', host: 'h1', port: 1 };
const H2 = { id: 'h2', host: 'h2', port: 2 };

describe('hub rotation (pure)', () => {
  it('a lost link moves to the other hub at once, then backs off after a whole round', () => {
    const r = new HubRotation([H1, H2], POLICY, () => 1);
    assert.equal(r.current.id, 'h1');
    r.up();
    assert.deepEqual(r.lost(), { hub: H2, delayMs: 0 }); // failover: no wait
    assert.equal(r.failovers, 1);
    assert.deepEqual(r.lost(), { hub: H1, delayMs: 200 }); // h2 failed too: a new round, after a backoff
    assert.deepEqual(r.lost(), { hub: H2, delayMs: 0 }); // each round tries every hub, one after the other
    assert.deepEqual(r.lost(), { hub: H1, delayMs: 400 });
    assert.deepEqual(r.lost(), { hub: H2, delayMs: 0 });
    assert.deepEqual(r.lost(), { hub: H1, delayMs: 800 });
    r.up(); // h1 reached: the round and the backoff start over
    assert.deepEqual(r.lost(), { hub: H2, delayMs: 0 });
    assert.equal(r.failovers, 2);
  });

  it('stays on the standby when it is up (non-preemptive), and fails back only when the standby is lost', () => {
    const r = new HubRotation([H1, H2], POLICY, () => 1);
    r.up();
    r.lost();
    r.up(); // on h2
    assert.equal(r.onPrimary, false);
    assert.deepEqual(r.lost(), { hub: H1, delayMs: 0 });
    assert.equal(r.onPrimary, true);
  });

  it('with one hub it is the plain redial with backoff', () => {
    const r = new HubRotation([{ id: undefined, host: 'h', port: 1 }], POLICY, () => 1);
    r.up();
    assert.equal(r.lost().delayMs, 200);
    assert.equal(r.lost().delayMs, 400);
    r.learnId('hub');
    assert.equal(r.current.id, 'hub');
    assert.equal(r.failovers, 0);
  });

  it('refuses an empty list', () => {
    assert.throws(() => new HubRotation([], POLICY), RangeError);
  });
});

// No round-trip probes: a hub "stopped" here only has its clock stand still — it would still answer
// the spokes' echo requests, which a stopped process does not.
const LIVENESS = { keepaliveMs: 250, deadMs: 1500, probeMs: 3_600_000, handshakeTimeoutMs: 1000 };

interface Node {
  daemon: Daemon;
  clock: ManualClock;
  port: MemoryPort | undefined;
  got: Buffer[];
}

async function startNode(network: MemoryNetwork, id: string, role: 'hub' | 'spoke', extra: Partial<Parameters<typeof Daemon.start>[1]>, mac?: string): Promise<Node> {
  const clock = new ManualClock(0);
  const transport = new MemoryTransport({ logger, clock }, { localHost: id, network, ...LIVENESS });
  const daemon = await Daemon.start({ logger, transport, clock }, { hostId: id, role, listen: { host: id, port: 1 }, reconnect: POLICY, ...extra });
  const got: Buffer[] = [];
  let port: MemoryPort | undefined;
  if (mac !== undefined) {
    port = new MemoryPort({ name: `vm-${id}`, mac: parseMac(mac) });
    port.onDeliver((f) => got.push(f));
    daemon.addPort(port);
  }
  return { daemon, clock, port, got };
}

/** Two hubs (h2 the standby, trunked to h1), spokes a, b and c with one VM each. */
async function startBackbone(): Promise<{ h1: Node; h2: Node; a: Node; b: Node; c: Node; all: Node[] }> {
  const network = new MemoryNetwork();
  const h1 = await startNode(network, 'h1', 'hub', {});
  const h2 = await startNode(network, 'h2', 'hub', { hub: { host: 'h1', port: 1, id: 'h1' } });
  const spoke = (id: string, mac: string): Promise<Node> =>
    startNode(network, id, 'spoke', { hub: { host: 'h1', port: 1, id: 'h1' }, standbyHub: { host: 'h2', port: 1, id: 'h2' } }, mac);
  const a = await spoke('a', '02:00:00:00:00:0a');
  const b = await spoke('b', '02:00:00:00:00:0b');
  const c = await spoke('c', '02:00:00:00:00:0c');
  const all = [h1, h2, a, b, c];
  await waitFor(() => [a, b, c].every((n) => n.daemon.hub?.up === true) && h2.daemon.link('h1') !== undefined, 'spokes on h1, trunk up');
  return { h1, h2, a, b, c, all };
}

/** Advance the clocks of `nodes` together, step by step, letting the links' microtasks run in between. */
async function advance(nodes: readonly Node[], ms: number, stepMs = 50): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    for (const n of nodes) n.clock.advance(stepMs);
    await new Promise((r) => setImmediate(r));
  }
}

/** `n` frames from `from`'s VM to `to`'s VM; resolves when all arrived (each exactly once is checked by the caller). */
async function exchange(from: Node, to: Node, n: number, seq0: number): Promise<void> {
  const before = to.got.length;
  for (let i = 0; i < n; i++) from.port!.transmit(testFrame(to.port!.mac, from.port!.mac, seq0 + i));
  await waitFor(() => to.got.length >= before + n, `${n} frames ${from.daemon.hostId} → ${to.daemon.hostId}`);
}

function seqs(n: Node, dst?: Buffer): number[] {
  return n.got.filter((f) => dst === undefined || f.subarray(0, 6).equals(dst)).map(seqOf);
}

describe('hub failover between daemons (memory transports, manual clocks)', { timeout: 30_000 }, () => {
  it('a killed hub: spokes move to the standby at once and reach each other there', async () => {
    const { h1, h2, a, b, c, all } = await startBackbone();
    await exchange(a, b, 10, 0);
    await h1.daemon.close(); // the primary goes away (its links say goodbye, as a killed process's sockets close)
    await waitFor(() => [a, b, c].every((n) => n.daemon.hub?.id === 'h2' && n.daemon.hub.up), 'every spoke on the standby');
    assert.ok([a, b, c].every((n) => n.daemon.hub!.failovers === 1));
    await exchange(a, b, 10, 100);
    await exchange(c, a, 10, 200);
    assert.deepEqual(seqs(b), [...range(0, 10), ...range(100, 10)], 'every frame once, in order');
    for (const n of all) await n.daemon.close();
    void h2;
  });

  it('a stopped hub (no more keepalives): spokes declare it dead after deadMs and fail over', async () => {
    const { h2, a, b, c, all } = await startBackbone();
    const running = [h2, a, b, c];
    await advance(all, 1000); // keepalives flow: nothing moves
    assert.ok([a, b, c].every((n) => n.daemon.hub?.id === 'h1'));
    // h1 "stopped": its clock stands still, so it sends nothing; the others' time runs on.
    await advance(running, LIVENESS.deadMs - 100);
    assert.ok([a, b, c].every((n) => n.daemon.hub?.id === 'h1'), 'not before deadMs');
    await advance(running, 500);
    await waitFor(() => [a, b, c].every((n) => n.daemon.hub?.id === 'h2' && n.daemon.hub.up), 'every spoke on the standby');
    await exchange(a, c, 10, 0);
    // h1 "resumes": its links are gone; spokes stay on h2 (non-preemptive) and h2 redials the trunk.
    await advance(all, 3000);
    assert.ok([a, b, c].every((n) => n.daemon.hub?.id === 'h2'), 'spokes stay on the standby');
    await waitFor(() => h2.daemon.link('h1') !== undefined, 'trunk up again');
    for (const n of all) await n.daemon.close();
  });

  it('spokes split between the hubs reach each other over the trunk, each frame once, floods included', async () => {
    const { h1, a, b, c, all } = await startBackbone();
    // Only a loses h1 (its link dropped): a is on h2, b and c stay on h1.
    await a.daemon.link('h1')!.close('test: this spoke alone loses the primary');
    await waitFor(() => a.daemon.hub?.id === 'h2' && a.daemon.hub.up, 'a on the standby');
    assert.ok(h1.daemon.link('a') === undefined || h1.daemon.link('a')!.closed);
    await exchange(a, b, 10, 0); // a → h2 → trunk → h1 → b
    await exchange(b, a, 10, 100);
    const bcast = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (let i = 0; i < 5; i++) c.port!.transmit(testFrame(BROADCAST_MAC, c.port!.mac, 1000 + i));
    await waitFor(() => seqs(a, bcast).length >= 5 && seqs(b, bcast).length >= 5, 'broadcasts everywhere');
    await advance(all, 500);
    assert.deepEqual(seqs(a, bcast), range(1000, 5), 'a got each broadcast once (across the trunk)');
    assert.deepEqual(seqs(b, bcast), range(1000, 5), 'b got each broadcast once');
    assert.equal(c.got.filter((f) => f.subarray(0, 6).equals(bcast)).length, 0, 'no broadcast came back to its sender');
    for (const n of all) await n.daemon.close();
  });

  it('a frame the hub floods (its rule names a link it lost) reaches its VM once, though a spoke it reached has a fast path to the VM\'s host', async () => {
    const { h1, a, b, c, all } = await startBackbone();
    try {
      a.daemon.applyFastPathLinks(1, [{ peer: 'b', address: { transport: 'memory', host: 'b', port: 1 }, reason: 'test', dial: true }]);
      b.daemon.applyFastPathLinks(1, [{ peer: 'a', address: { transport: 'memory', host: 'a', port: 1 }, reason: 'test', dial: false }]);
      await waitFor(() => a.daemon.link('b') !== undefined && b.daemon.link('a') !== undefined, 'fast path a–b up');
      const vmA = '02:00:00:00:00:0a';
      // What a failover leaves for a moment: the hub's rule for a's VM names the primary it lost (here a host it never had
      // a link to), so it floods that VM's frames to every spoke; b's rule sends that VM's frames over the fast path.
      h1.daemon.applyRules(1, [{ id: 'vm-a', priority: 100, src: 'any', dst: vmA, action: { link: 'lost-primary' } }]);
      b.daemon.applyRules(1, [{ id: 'vm-a', priority: 200, src: 'any', dst: vmA, action: { link: 'a' } }]);
      await exchange(c, a, 10, 0);
      await advance(all, 500);
      assert.deepEqual(seqs(a), range(0, 10), 'each frame once: b does not send the flooded copy on to a');
      assert.ok(b.daemon.table.stats.drops['split-horizon'] >= 10, 'b dropped what it was flooded (split horizon)');
    } finally {
      for (const n of all) await n.daemon.close(); // a failed assertion too: else the file never ends
    }
  });

  it('without any hub, hosts joined by a fast-path link still reach each other, broadcasts (ARP) included', async () => {
    const { h1, h2, a, b, all } = await startBackbone();
    a.daemon.applyFastPathLinks(1, [{ peer: 'b', address: { transport: 'memory', host: 'b', port: 1 }, reason: 'test', dial: true }]);
    b.daemon.applyFastPathLinks(1, [{ peer: 'a', address: { transport: 'memory', host: 'a', port: 1 }, reason: 'test', dial: false }]);
    await waitFor(() => a.daemon.link('b') !== undefined && b.daemon.link('a') !== undefined, 'fast path a–b up');
    const bcast = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    // With a hub: a broadcast goes through it only, never also over the fast path.
    a.port!.transmit(testFrame(BROADCAST_MAC, a.port!.mac, 1));
    await waitFor(() => seqs(b, bcast).length >= 1, 'broadcast through the hub');
    await advance(all, 200);
    assert.deepEqual(seqs(b, bcast), [1]);
    await h1.daemon.close();
    await h2.daemon.close();
    await waitFor(() => a.daemon.hub?.up === false && b.daemon.hub?.up === false, 'no hub left');
    a.port!.transmit(testFrame(BROADCAST_MAC, a.port!.mac, 2));
    await waitFor(() => seqs(b, bcast).length >= 2, 'broadcast over the fast path');
    await exchange(b, a, 10, 100);
    assert.deepEqual(seqs(b, bcast), [1, 2]);
    for (const n of all) await n.daemon.close();
  });
});

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}
