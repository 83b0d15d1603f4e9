/**
 * Port security (src/dataplane/port-security.ts): each limit on one hub
 * daemon with memory ports and a manual clock, so rates are exact — the
 * source lock, the learned-MAC count, new MACs a second, the flood token
 * bucket — each dropping, counting, and reporting a rate-limited event, while
 * the other VM's traffic keeps flowing; and the config that sets them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { ConfigError } from '../../src/common/errors.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, parseMac, type Mac } from '../../src/common/mac.ts';
import type { DaemonEvent } from '../../src/control/daemon-control.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { DEFAULT_PORT_SECURITY, type PortSecurityPolicy } from '../../src/dataplane/port-security.ts';
import { TokenBucket } from '../../src/dataplane/token-bucket.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

interface Vm {
  mac: Mac;
  port: MemoryPort;
  got: Buffer[];
}

function vm(name: string, mac: string): Vm {
  const port = new MemoryPort({ name, mac: parseMac(mac) });
  const v: Vm = { mac: port.mac, port, got: [] };
  port.onDeliver((f) => v.got.push(Buffer.from(f)));
  return v;
}

/** A hub with two VMs: `bad` under `security`, `good` with the defaults; the events it emitted. */
async function setup(security: Partial<PortSecurityPolicy>) {
  const clock = new ManualClock(1_000);
  const d = await Daemon.start(
    { logger, clock, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: new MemoryNetwork() }) },
    { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } },
  );
  const bad = vm('bad', '02:00:00:00:00:0b');
  const good = vm('good', '02:00:00:00:00:0c');
  d.addPort(bad.port, undefined, { security });
  d.addPort(good.port);
  const events: DaemonEvent[] = [];
  d.onEvent((e) => events.push(e));
  return { d, clock, bad, good, events };
}

const security = (d: Daemon, port: string) => d.facts().ports.find((p) => p.name === port)!.security!;
const limitEvents = (events: DaemonEvent[], limit: string) => events.filter((e) => e.type === 'port-limit' && e.limit === limit);
/** A frame sent by the daemon's port has gone through the forwarding loop once the port's rx counter and the VM's deliveries settle; wait on a marker frame instead. */
async function marker(from: Vm, to: Vm, seq: number): Promise<void> {
  from.port.transmit(testFrame(to.mac, from.mac, seq));
  await waitFor(() => to.got.some((f) => seqOf(f) === seq), `marker ${seq} at ${to.port.name}`);
}

describe('TokenBucket', () => {
  it('admits a burst, then refills at the rate, never above the burst', () => {
    const b = new TokenBucket(10, 3, 0);
    assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
    assert.equal(b.take(50), false, 'half a token after 50 ms');
    assert.equal(b.take(100), true, 'one token after 100 ms');
    assert.equal(b.available(10_000), 3, 'capped at the burst');
    assert.throws(() => new TokenBucket(-1, 3, 0), RangeError);
    assert.throws(() => new TokenBucket(1, 0, 0), RangeError);
  });
});

describe('port security', () => {
  it('a locked port (the default) drops frames from other source MACs, counts them and reports them rate limited', async () => {
    const { d, clock, bad, good, events } = await setup({});
    try {
      await marker(bad, good, 1);
      for (let i = 0; i < 50; i++) bad.port.transmit(testFrame(good.mac, parseMac('02:00:00:00:99:00') + i, 100 + i));
      await marker(bad, good, 2);
      assert.deepEqual(good.got.map(seqOf), [1, 2], 'none of the spoofed frames reached the other VM');
      assert.equal(security(d, 'bad')['spoofed-source'], 50);
      assert.equal(security(d, 'bad').locked, true);
      assert.equal(d.table.learned().filter((l) => l.location.kind === 'port' && l.location.name === 'bad').length, 1, 'only its own MAC learned');
      assert.equal(limitEvents(events, 'spoofed-source').length, 1, 'one event for the burst (rate limited)');
      assert.equal(d.counters.peek().entries.filter((e) => e.src !== bad.mac && e.src !== good.mac).length, 0, 'spoofed sources kept out of the traffic matrix');
      clock.advance(10_000);
      bad.port.transmit(testFrame(good.mac, parseMac('02:00:00:00:99:ff'), 999));
      await marker(bad, good, 3);
      const later = limitEvents(events, 'spoofed-source');
      assert.equal(later.length, 2, 'reported again once the interval passed');
      assert.deepEqual(later[1], { type: 'port-limit', port: 'bad', limit: 'spoofed-source', frames: 50 }, 'with the frames since the last report');
    } finally {
      await d.close();
    }
  });

  it('an allowed MAC passes the lock', async () => {
    const extra = parseMac('02:00:00:00:aa:01');
    const { d, bad, good } = await setup({ allowedMacs: [extra] });
    try {
      bad.port.transmit(testFrame(good.mac, extra, 7));
      await waitFor(() => good.got.length === 1, 'the frame from the allowed MAC');
      assert.equal(security(d, 'bad')['spoofed-source'], 0);
      assert.equal(security(d, 'bad').learnedMacs, 1);
    } finally {
      await d.close();
    }
  });

  it('an unlocked port learns at most maxMacs; the rest are dropped without evicting or invalidating anything else', async () => {
    const { d, bad, good } = await setup({ lock: false, maxMacs: 4, newMacsPerSecond: 1000 });
    try {
      await marker(good, bad, 1); // good's MAC learned
      await marker(bad, good, 2); // bad's own MAC learned: 1 of 4
      const before = d.table.stats;
      for (let i = 0; i < 500; i++) bad.port.transmit(testFrame(good.mac, parseMac('02:00:00:01:00:00') + i, 100 + i));
      await marker(bad, good, 3);
      const s = security(d, 'bad');
      assert.equal(s.learnedMacs, 4, 'its own and three more');
      assert.equal(s['mac-limit'], 497);
      assert.equal(good.got.filter((f) => seqOf(f) >= 100).length, 3, 'frames from the three admitted MACs only');
      assert.ok(d.table.learned().some((l) => l.mac === good.mac), "the other VM's MAC still learned");
      const after = d.table.stats;
      assert.equal(after.learnedEvictions, before.learnedEvictions, 'nothing evicted');
      assert.equal(after.invalidations, before.invalidations, 'no whole-cache invalidation');
      assert.equal(after.macInvalidations - before.macInvalidations, 3, 'one per admitted MAC only');
      assert.equal(after.drops['port-limit'], 497);
      await marker(good, bad, 4);
    } finally {
      await d.close();
    }
  });

  it('an unlocked port learns at most newMacsPerSecond new MACs a second', async () => {
    const { d, clock, bad, good, events } = await setup({ lock: false, maxMacs: 100, newMacsPerSecond: 2 });
    try {
      // The port's own MAC takes no token: it is the port's home.
      await marker(bad, good, 1);
      for (let i = 0; i < 5; i++) bad.port.transmit(testFrame(good.mac, parseMac('02:00:00:02:00:00') + i, 10 + i));
      await marker(bad, good, 2);
      assert.equal(security(d, 'bad')['mac-rate'], 3, 'two admitted, three refused in the same instant');
      clock.advance(1000);
      for (let i = 2; i < 5; i++) bad.port.transmit(testFrame(good.mac, parseMac('02:00:00:02:00:00') + i, 20 + i));
      await marker(bad, good, 3);
      assert.equal(security(d, 'bad')['mac-rate'], 4, 'a second later two more admitted, one refused');
      assert.equal(security(d, 'bad').learnedMacs, 5);
      assert.equal(limitEvents(events, 'mac-rate').length, 1, 'reported once per interval');
    } finally {
      await d.close();
    }
  });

  it('floods from a port pass a token bucket; the excess is dropped and counted, unicast is not limited', async () => {
    const { d, clock, bad, good, events } = await setup({ floodFramesPerSecond: 100, floodBurst: 10 });
    try {
      await marker(good, bad, 1);
      for (let i = 0; i < 30; i++) bad.port.transmit(testFrame(BROADCAST_MAC, bad.mac, 100 + i));
      for (let i = 0; i < 30; i++) bad.port.transmit(testFrame(good.mac, bad.mac, 200 + i));
      await marker(bad, good, 2);
      assert.equal(good.got.filter((f) => seqOf(f) >= 100 && seqOf(f) < 200).length, 10, 'the burst of broadcasts');
      assert.equal(good.got.filter((f) => seqOf(f) >= 200 && seqOf(f) < 300).length, 30, 'every unicast frame');
      assert.equal(security(d, 'bad')['flood-rate'], 20);
      assert.equal(limitEvents(events, 'flood-rate').length, 1);
      clock.advance(50); // 5 tokens
      for (let i = 0; i < 10; i++) bad.port.transmit(testFrame(BROADCAST_MAC, bad.mac, 300 + i));
      await marker(bad, good, 3);
      assert.equal(good.got.filter((f) => seqOf(f) >= 300 && seqOf(f) < 400).length, 5, 'refilled at the rate');
      assert.equal(security(d, 'bad')['flood-rate'], 25);
    } finally {
      await d.close();
    }
  });

  it('the defaults: locked, a few MACs, floods limited', () => {
    assert.equal(DEFAULT_PORT_SECURITY.lock, true);
    assert.ok(DEFAULT_PORT_SECURITY.maxMacs >= 1 && DEFAULT_PORT_SECURITY.maxMacs <= 16);
    assert.ok(DEFAULT_PORT_SECURITY.floodFramesPerSecond > 0);
  });
});

describe('port security in the daemon config', () => {
  const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 7000 } };
  const port = { name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01' };

  it('defaults apply field by field', () => {
    const c = parseDaemonConfig({ ...base, ports: [{ ...port, security: { lock: false, maxMacs: 64 } }] });
    assert.deepEqual(c.ports[0]!.security, { ...DEFAULT_PORT_SECURITY, lock: false, maxMacs: 64, allowedMacs: [] });
    assert.equal(parseDaemonConfig({ ...base, ports: [port] }).ports[0]!.security, undefined, 'absent: the daemon applies the defaults');
  });

  it('bad values are configuration errors naming the key', () => {
    const bad = (security: unknown): ConfigError => {
      try {
        parseDaemonConfig({ ...base, ports: [{ ...port, security }] });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err;
      }
      assert.fail('accepted');
    };
    assert.match(bad({ maxMacs: 0 }).message, /ports\[0\]\.security\.maxMacs/);
    assert.match(bad({ floodBurst: 0.5 }).message, /ports\[0\]\.security\.floodBurst/);
    assert.match(bad({ allowedMacs: ['nope'] }).message, /ports\[0\]\.security\.allowedMacs\[0\]/);
    assert.match(bad({ locked: true }).message, /locked/);
    assert.match(bad({ maxMacs: 2, allowedMacs: ['02:00:00:00:00:02', '02:00:00:00:00:03'] }).message, /maxMacs 2 is below/);
  });
});
