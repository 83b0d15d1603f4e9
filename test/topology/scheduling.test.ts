import { test } from 'node:test';
import assert from 'node:assert/strict';
import { schedule, type MoveEstimate, type SchedHost, type SchedulingInput, type SchedVm } from '../../src/topology/scheduling.ts';
import { followTheSunPolicy, type FollowTheSunParams } from '../../src/topology/follow-the-sun.ts';
import { spotMarketPolicy, type SpotMarketParams } from '../../src/topology/spot-market.ts';
import { packingPolicy, packingState, type PackingParams } from '../../src/topology/packing.ts';
import { PlacementError } from '../../src/topology/errors.ts';
import { advisePlacement } from '../../src/topology/placement.ts';
import { trafficLatencyPolicy } from '../../src/topology/traffic-latency-policy.ts';
import { edgeKey } from '../../src/topology/vm-registry.ts';

/**
 * The scheduling framework and its three policies on small hand-checked
 * cases. Sites us, eu, asia: 80 ms us–eu, 150 ms us–asia, 200 ms eu–asia,
 * 1 ms inside a site. Every move is estimated at 1 GiB and 30 s unless a
 * test says otherwise (the engine's estimate comes from the controller).
 */

const RTT: Record<string, number> = { 'us|eu': 80, 'us|asia': 150, 'eu|asia': 200 };
const siteRttMs = (a: string, b: string): number => (a === b ? 1 : RTT[`${a}|${b}`] ?? RTT[`${b}|${a}`]!);
const GiB = 1024 ** 3;
const HOUR = 3_600_000;

function input(hosts: SchedHost[], vms: SchedVm[], placement: Record<string, string>, nowMs: number, estimate: MoveEstimate = { bytes: GiB, seconds: 30 }): SchedulingInput {
  const site = new Map(hosts.map((h) => [h.id, h.site]));
  return {
    placement: new Map(Object.entries(placement)), hosts, vms: new Map(vms.map((v) => [v.id, v])),
    latencyMs: (a, b) => (a === b ? 0 : siteRttMs(site.get(a)!, site.get(b)!)), siteRttMs, nowMs, estimate: () => estimate,
  };
}
const host = (id: string, site: string, cpu = 16, memoryMiB = 65_536): SchedHost => ({ id, site, cpu, memoryMiB });
const vm = (id: string, cpu = 2, memoryMiB = 2048): SchedVm => ({ id, cpu, memoryMiB, diskGiB: 10 });

// Clients: in the US from 12h to 23h UTC, in Asia from 0h to 11h.
const sun = (over: Partial<FollowTheSunParams> = {}): FollowTheSunParams => ({
  services: [{ name: 'zk', primary: 'master', members: [] }],
  clients: new Map([['us', Array.from({ length: 24 }, (_, h) => (h >= 12 ? 1 : 0))], ['asia', Array.from({ length: 24 }, (_, h) => (h < 12 ? 1 : 0))]]),
  horizonHours: 1, perSecond: 1, perGiB: 0, ...over,
});

test('follow the sun: the primary moves to the site of its clients as the day turns, with the latency it saves as its reason', () => {
  const hosts = [host('us1', 'us'), host('asia1', 'asia')];
  const at = (h: number, where: string) => input(hosts, [vm('master')], { master: where }, h * HOUR);
  const morning = schedule(followTheSunPolicy(sun()), at(3, 'us1'), { threshold: 10 });
  // Asian clients see 150 ms from us, 1 ms from asia: gain 149 ms, cost 30 s × 1 ms/s = 30, net 119 > T = 10.
  assert.deepEqual(morning.actions.map((a) => a.moves.map((m) => [m.vm, m.from, m.to])), [[['master', 'us1', 'asia1']]]);
  assert.deepEqual([morning.current.score, morning.best.score, morning.actions[0]!.cost, morning.actions[0]!.net], [-150, -1, 30, 119]);
  assert.match(morning.actions[0]!.reason, /zk's clients \(asia 100%\) at 3h UTC see 1\.00 ms from asia instead of 150 ms from us; gain 149 ms, cost 30\.00 \(1\.00 GiB, 30\.00 s\), net 119 > T = 10\.00/);
  // In the evening the clients are in the US: back it goes; while it is already there nothing moves.
  assert.equal(schedule(followTheSunPolicy(sun()), at(18, 'asia1'), { threshold: 10 }).actions[0]?.moves[0]?.to, 'us1');
  assert.deepEqual(schedule(followTheSunPolicy(sun()), at(18, 'us1'), { threshold: 10 }).actions, []);
});

test('follow the sun: a move whose cost exceeds its gain is refused, with both figures in the reason', () => {
  const hosts = [host('us1', 'us'), host('asia1', 'asia')];
  // A slow path: the engine estimates 200 s; at 1 ms of score per second the move costs 200 > the 149 ms it saves.
  const r = schedule(followTheSunPolicy(sun()), input(hosts, [vm('master')], { master: 'us1' }, 3 * HOUR, { bytes: 8 * GiB, seconds: 200 }), { threshold: 10 });
  assert.deepEqual(r.actions, []);
  assert.equal(r.best.score, r.current.score);
  assert.ok(r.refused !== undefined && r.refused.gain === 149 && r.refused.cost === 200);
  assert.match(r.reason, /^refused: move master us1→asia1: .*gain 149 ms, cost 200 \(8\.00 GiB, 200 s\), its cost exceeds its gain/);
});

test('follow the sun with measured clients: weights are the traffic entering the service from each site', () => {
  const hosts = [host('us1', 'us'), host('eu1', 'eu'), host('asia1', 'asia')];
  const ids = ['master', 'cu', 'ca'];
  // cu (on us1) sends 1 MB/s to the master, ca (on asia1) 9 MB/s: the master belongs in Asia.
  const traffic = { ids, rates: new Map([[0 * 3 + 0, 0], [1 * 3 + 0, 1e6], [2 * 3 + 0, 9e6]].filter(([, r]) => r! > 0) as Array<[number, number]>) };
  const base = input(hosts, [vm('master'), vm('cu'), vm('ca')], { master: 'eu1', cu: 'us1', ca: 'asia1' }, 0);
  const r = schedule(followTheSunPolicy(sun({ clients: 'measured' })), { ...base, traffic }, { threshold: 1 });
  assert.deepEqual(r.actions.flatMap((a) => a.moves.map((m) => [m.vm, m.to])), [['master', 'asia1']]);
  assert.match(r.actions[0]!.reason, /clients \(asia 90%, us 10%\)/);
});

test('a swap is found where no single move beats T: both hosts are full, each primary belongs on the other', () => {
  // Each host has memory for one VM: no single move fits.
  const hosts = [host('us1', 'us', 4, 2048), host('asia1', 'asia', 4, 2048)];
  const params = sun({
    services: [{ name: 'a', primary: 'pa', members: [] }, { name: 'b', primary: 'pb', members: [] }],
    clients: new Map([['us', new Array(24).fill(1)], ['asia', new Array(24).fill(0)]]),
  });
  // Two services: pa's clients are in the US, pb's in Asia; the application's score is the sum of both.
  const pa = followTheSunPolicy(params);
  const pb = followTheSunPolicy({ ...params, clients: new Map([['us', new Array(24).fill(0)], ['asia', new Array(24).fill(1)]]) });
  const both = {
    ...pa,
    evaluate: (p: ReadonlyMap<string, string>, i: SchedulingInput) => {
      const a = pa.evaluate(new Map([['pa', p.get('pa')!]]), i);
      const b = pb.evaluate(new Map([['pb', p.get('pb')!]]), i);
      return { score: a.score + b.score, notes: [...a.notes, ...b.notes] };
    },
    explain: () => 'each primary to its clients',
  };
  const r = schedule(both, input(hosts, [vm('pa'), vm('pb')], { pa: 'asia1', pb: 'us1' }, 0), { threshold: 50 });
  assert.equal(r.actions.length, 1);
  assert.equal(r.actions[0]!.kind, 'swap');
  assert.deepEqual(r.actions[0]!.moves.map((m) => [m.vm, m.from, m.to]), [['pa', 'asia1', 'us1'], ['pb', 'us1', 'asia1']]);
  // Gain 2 × 149, cost 2 × 30.
  assert.deepEqual([r.actions[0]!.gain, r.actions[0]!.cost], [298, 60]);
});

const spot = (over: Partial<SpotMarketParams> = {}): SpotMarketParams => ({
  prices: new Map([['us', [{ atMs: 0, perHour: 0.3 }]], ['eu', [{ atMs: 0, perHour: 0.1 }]], ['asia', [{ atMs: 0, perHour: 0.2 }]]]),
  terminations: [], billingPeriodMs: HOUR, billingEpochMs: 0, bidPerHour: Number.POSITIVE_INFINITY, perGiB: 0.01, terminationPenalty: 1000, ...over,
});

test('spot market: a price move waits for the end of the billing hour, and must finish before it turns', () => {
  const hosts = [host('us1', 'us'), host('eu1', 'eu'), host('asia1', 'asia')];
  const vms = [vm('v1'), vm('v2')];
  const at = (t: number, est?: MoveEstimate) => input(hosts, vms, { v1: 'us1', v2: 'us1' }, t, est);
  // 10 minutes into the hour: moving now pays 50 min at eu on top of the paid hour in us. Per VM the gain is 0.2 and
  // the cost 0.1 × 50/60 + 0.01 = 0.093; both VMs together (a group) net 0.213: not more than T = 0.25.
  const early = schedule(spotMarketPolicy(spot()), at(10 * 60_000), { threshold: 0.25 });
  assert.deepEqual(early.actions, []);
  assert.match(early.reason, /net 0\.213 not more than T = 0\.250/);
  // 2 minutes before the hour turns: cost 0.1 × 2/60 + 0.01 = 0.013 each; both VMs move to eu, the cheapest site.
  const late = schedule(spotMarketPolicy(spot()), at(58 * 60_000), { threshold: 0.25 });
  assert.deepEqual(late.actions.flatMap((a) => a.moves.map((m) => [m.vm, m.to])).sort(), [['v1', 'eu1'], ['v2', 'eu1']]);
  assert.match(late.actions[0]!.reason, /the next hour costs \$0\.100 at eu, \$0\.300 at us \(billing hour turns in 2 min\)/);
  // The same, but the engine says a move takes 5 minutes: it would finish after the hour turns and pay us's next hour too.
  assert.deepEqual(schedule(spotMarketPolicy(spot()), at(58 * 60_000, { bytes: GiB, seconds: 300 }), { threshold: 0.25 }).actions, []);
});

test('spot market: a termination notice moves every VM off the site before it is reached, to the cheapest safe site', () => {
  const hosts = [host('us1', 'us'), host('eu1', 'eu'), host('asia1', 'asia')];
  const vms = [vm('v1'), vm('v2'), vm('v3')];
  // eu is the cheapest, and is reclaimed at 20 min (notice at 18 min); the VMs are on eu.
  const params = spot({ terminations: [{ site: 'eu', noticeAtMs: 18 * 60_000, atMs: 20 * 60_000 }] });
  const before = schedule(spotMarketPolicy(params), input(hosts, vms, { v1: 'eu1', v2: 'eu1', v3: 'eu1' }, 17 * 60_000), { threshold: 0.05 });
  assert.deepEqual(before.actions, [], 'no notice yet, eu is the cheapest');
  const r = schedule(spotMarketPolicy(params), input(hosts, vms, { v1: 'eu1', v2: 'eu1', v3: 'eu1' }, 18 * 60_000), { threshold: 0.05 });
  assert.deepEqual([...r.best.placement.values()], ['asia1', 'asia1', 'asia1'], 'all three leave eu, for asia (cheaper than us)');
  assert.match(r.actions[0]!.reason, /eu is being reclaimed/);
  assert.ok(r.best.score > r.current.score + 2999);
  // A price at or above the bid counts as reclaimed, too.
  const bid = spot({ bidPerHour: 0.25, prices: new Map([['us', [{ atMs: 0, perHour: 0.2 }, { atMs: 30 * 60_000, perHour: 0.5 }]], ['eu', [{ atMs: 0, perHour: 0.22 }]]]) });
  const two = [host('us1', 'us'), host('eu1', 'eu')];
  assert.deepEqual(schedule(spotMarketPolicy(bid), input(two, [vm('v1')], { v1: 'us1' }, 31 * 60_000), { threshold: 0.05 }).actions[0]?.moves[0]?.to, 'eu1');
});

const pack = (load: number): PackingParams => ({
  load: new Array(24).fill(load), hostCostPerHour: 1, headroom: 0.8, overloadPerCpuHour: 2, horizonHours: 1, perGiB: 0.01, perSecond: 0,
});

test('packing: at light load the VMs are consolidated onto fewer hosts (a host evacuated is a group move); at high load they spread again', () => {
  const hosts = [host('h1', 'us', 8), host('h2', 'us', 8), host('h3', 'us', 8)];
  const vms = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => vm(id, 4));
  const spread = { a: 'h1', b: 'h1', c: 'h2', d: 'h2', e: 'h3', f: 'h3' };
  // Load 0.2: 0.8 vCPU per VM; a host's headroom is 6.4 vCPU. Moving one VM frees nothing (gain ≤ 0); evacuating h1
  // onto h2 and h3 frees a host: gain $1/h, cost 2 × 0.01.
  const light = schedule(packingPolicy(pack(0.2)), input(hosts, vms, spread, 0), { threshold: 0.5 });
  assert.equal(light.actions[0]!.kind, 'group');
  const p = pack(0.2);
  const s = packingState(p, light.best.placement, input(hosts, vms, spread, 0));
  assert.ok(s.activeHosts <= 2 && s.overloadCpu === 0, `hosts ${s.activeHosts}, overload ${s.overloadCpu}`);
  assert.match(light.best.notes[0]!, /hosts active \(\d freed\)/);
  assert.match(light.actions[0]!.reason, /^group .*pack /);
  // Load 0.9 on the packed placement: 3.6 vCPU per VM, more than one host's headroom holds two of: VMs spread to the idle host.
  const packed = Object.fromEntries(light.best.placement);
  const busy = schedule(packingPolicy(pack(0.9)), input(hosts, vms, packed, 0), { threshold: 0.5 });
  assert.ok(busy.actions.length > 0);
  const after = packingState(pack(0.9), busy.best.placement, input(hosts, vms, packed, 0));
  assert.ok(after.activeHosts > s.activeHosts && after.overloadCpu < packingState(pack(0.9), light.best.placement, input(hosts, vms, packed, 0)).overloadCpu);
  assert.match(busy.actions[0]!.reason, /spread /);
});

test('memory is a hard limit even when packing oversubscribes CPUs; bad input is a typed error', () => {
  const hosts = [host('h1', 'us', 8, 4096), host('h2', 'us', 8, 4096)];
  const vms = [vm('a', 1, 2048), vm('b', 1, 2048), vm('c', 1, 4096)];
  const r = schedule(packingPolicy(pack(0.1)), input(hosts, vms, { a: 'h1', b: 'h1', c: 'h2' }, 0), { threshold: 0 });
  assert.deepEqual(r.actions, [], 'nothing fits beside c');
  assert.throws(() => schedule(packingPolicy(pack(0.1)), input(hosts, vms, { a: 'h9' }, 0), { threshold: 0 }), (e: unknown) => e instanceof PlacementError && /unknown host h9/.test(e.message));
  assert.throws(() => schedule(packingPolicy(pack(0.1)), input(hosts, vms, { zz: 'h1' }, 0), { threshold: 0 }), /VM zz has no resources/);
  assert.throws(() => schedule(packingPolicy(pack(0.1)), input(hosts, vms, {}, 0), { threshold: -1 }), /threshold T/);
});

test('traffic × latency as a policy: in an evenly full layout where advice finds nothing, a swap puts each pair together', () => {
  // h1 (us) holds x1 and y1, h2 (asia) x2 and y2; x1↔x2 and y1↔y2 talk, 1 MB/s each way. Each host has memory for two VMs.
  const ids = ['x1', 'y1', 'x2', 'y2'];
  const rates = new Map<number, number>();
  for (const [a, b] of [[0, 2], [2, 0], [1, 3], [3, 1]] as const) rates.set(edgeKey(a, b, ids.length), 1e6);
  const traffic = { ids, rates };
  const hosts = [host('h1', 'us', 8, 4096), host('h2', 'asia', 8, 4096)];
  const placement = { x1: 'h1', y1: 'h1', x2: 'h2', y2: 'h2' };
  const base = { ...input(hosts, ids.map((id) => vm(id)), placement, 0), traffic };
  // Advice: every move would put three VMs on a host, over the busiest host's two: nothing.
  const advice = advisePlacement(base.placement, { traffic, latencyMs: base.latencyMs, hosts: ['h1', 'h2'] }, { threshold: 0, maxVmsPerHost: 2 });
  assert.deepEqual(advice.moves, []);
  // The policy: swap y1 and x2 (or x1 and y2); both pairs then talk inside a host. Score −4 MB/s × 150 ms → 0.
  const r = schedule(trafficLatencyPolicy({ perGiB: 1e8, perSecond: 0 }), base, { threshold: 1e8 });
  assert.equal(r.actions.length, 1);
  assert.equal(r.actions[0]!.kind, 'swap');
  assert.deepEqual([r.current.score, r.best.score + 0], [-4e6 * 150, 0]);
  const after = r.best.placement;
  assert.ok(after.get('x1') === after.get('x2') && after.get('y1') === after.get('y2'));
  assert.match(r.actions[0]!.reason, /would cross 0 ms instead of 150 ms; gain 600000000 B\/s·ms, cost 200000000 \(2\.00 GiB/);
});
