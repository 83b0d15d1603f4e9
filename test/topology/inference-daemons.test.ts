/**
 * Topology inference on real traffic through real daemons, at the default
 * inference parameters: `vnet daemon`s (hub + 3 spokes, memory transport)
 * with memory-port VMs sending L2 frames (the traffic generator), each
 * daemon's real controller agent reporting its counters over the real
 * control channel (mutual TLS on loopback) to a real controller, whose
 * update period runs the real VTTIF pipeline and change detection.
 *
 * Time: the default smoothing window is seconds long, so the update loop
 * runs in virtual time: the agents and the traffic generator run on a
 * ManualClock advanced one update period at a time, the controller reads
 * the same virtual time (its `wallClock`), and each period is closed by
 * `tick()` once every daemon's report for it has arrived (a condition, not
 * a sleep). The daemons run on the same ManualClock, so the intervals their
 * reports stamp are exactly one update period each.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { EventView } from '../../src/controller/api-events.ts';
import type { TopologyView } from '../../src/controller/api-views.ts';
import { startController, type ControllerHandle } from '../../src/controller/runtime.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { PatternTraffic } from '../../src/dataplane/traffic-generator.ts';
import { patternEdges } from '../../src/topology/patterns.ts';
import { DEFAULT_SMOOTHING_INTERVAL_MS, DEFAULT_UPDATE_PERIOD_MS } from '../../src/topology/vttif-defaults.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const SPOKES = ['c1', 'c2', 'c3'];
const VMS = 6;
const mac = (i: number): string => `02:00:00:00:09:0${i}`;
const YAML = `name: inference
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true }
${SPOKES.map((h) => `  - { id: ${h}, site: lab }`).join('\n')}
vms:
${Array.from({ length: VMS }, (_, i) => `  - { name: vm${i}, mac: "${mac(i)}", ip: 10.90.0.${10 + i}, host: ${SPOKES[i % SPOKES.length]} }`).join('\n')}
controller:
  control: { host: 127.0.0.1, port: 0 }
policy:
  fastPathBudget: 0
`;
/** Three smoothing windows, in update periods: the goal for an announcement. */
const GOAL = (3 * DEFAULT_SMOOTHING_INTERVAL_MS) / DEFAULT_UPDATE_PERIOD_MS;
const RING = patternEdges('ring', VMS);
const PATH = patternEdges('bus', VMS);

interface Rig {
  controller: ControllerHandle;
  announced: TopologyView[];
  /** A generator on the virtual clock: `bytesPerSecond` per direction of each edge, `frameBytes` a frame. */
  generator(frameBytes: number, bytesPerSecond: number): PatternTraffic;
  /** Run one update period of virtual time; returns the periods run so far. */
  period(): Promise<number>;
  close(): Promise<void>;
}

async function startRig(): Promise<Rig> {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), 'vnet-infer-'));
  const clock = new ManualClock(0, { wallStartMs: 1_000_000 });
  const registry = new Registry();
  const controller = await startController({ logger, registry, clock: new ManualClock(0), wallClock: () => clock.wallNow() }, {
    deployment: parseDeployment(YAML, 'inference.yaml'),
    dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } },
    pingIntervalMs: 60_000,
  });
  const net = new MemoryNetwork();
  const transport = (host: string): MemoryTransport => new MemoryTransport({ logger }, { localHost: host, network: net, keepaliveMs: 100, deadMs: 5000 });
  const listen = { host: '127.0.0.1', port: 0 };
  const hub = await Daemon.start({ logger, clock, transport: transport('hub') }, { hostId: 'hub', role: 'hub', listen });
  const daemons = [hub];
  for (const id of SPOKES) daemons.push(await Daemon.start({ logger, clock, transport: transport(id) }, { hostId: id, role: 'spoke', listen, hub: { ...hub.listenAddress!, id: 'hub' } }));
  const ports = Array.from({ length: VMS }, (_, i) => new MemoryPort({ name: `vm${i}`, mac: parseMac(mac(i)) }));
  ports.forEach((p, i) => daemons[1 + (i % SPOKES.length)]!.addPort(p, `10.90.0.${10 + i}`));
  const agents = daemons.map((daemon) => {
    const cert = pki.host(daemon.hostId);
    return new ControllerAgent({ daemon, logger, clock }, { url: `wss://127.0.0.1:${controller.controlPort}/control`, tls: { ca: pki.ca, cert: cert.cert, key: cert.key }, backoff: { initialMs: 20, maxMs: 100 } });
  });
  for (const a of agents) a.start();
  await waitFor(() => agents.every((a) => a.state === 'connected'), 'every agent connected', 10_000);
  const announced: TopologyView[] = [];
  const unsubscribe = controller.model.subscribe((e: EventView) => { if (e.type === 'topology-changed') announced.push(e.payload.topology); });
  const generators: PatternTraffic[] = [];
  const trafficMessages = async (): Promise<number> => (await registry.getSingleMetric('vnet_control_messages_total')!.get()).values.filter((v) => v.labels['type'] === 'traffic').reduce((s, v) => s + v.value, 0);
  let periods = 0;
  let expected = await trafficMessages();
  return {
    controller,
    announced,
    generator(frameBytes, bytesPerSecond) {
      const g = new PatternTraffic({ clock }, { vms: ports.map((port) => ({ name: port.name, port })), edges: [], bytesPerSecond, frameBytes });
      g.start();
      generators.push(g);
      return g;
    },
    async period() {
      clock.advance(DEFAULT_UPDATE_PERIOD_MS);
      expected += agents.length;
      await waitFor(async () => (await trafficMessages()) >= expected, `the traffic reports of period ${periods + 1}`, 10_000);
      controller.tick();
      return ++periods;
    },
    async close() {
      unsubscribe();
      for (const g of generators) g.stop();
      await Promise.all(agents.map((a) => a.close()));
      await Promise.all(daemons.map((d) => d.close()));
      await controller.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run periods until `done()` or `limit` periods; returns how many ran. */
async function runUntil(rig: Rig, limit: number, done: () => boolean): Promise<number> {
  for (let p = 1; p <= limit; p++) {
    await rig.period();
    if (done()) return p;
  }
  return limit + 1;
}

const last = (rig: Rig): string | undefined => rig.announced.at(-1)?.class;

describe('topology inference on traffic through vnet daemons, at the default parameters', { timeout: 120_000 }, () => {
  it('a path of pings, then a ring: the ring is announced within 3 smoothing windows, never stuck on bus', async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const pings = rig.generator(98, 98); // ping -i 1: a 98-byte echo each way per second
    pings.setPattern(PATH);
    await runUntil(rig, 6 * GOAL, () => last(rig) === 'bus');
    assert.equal(last(rig), 'bus', `pings along a path held for minutes are a bus (announced: ${rig.announced.map((x) => x.class).join(', ')})`);
    const ring = rig.generator(1000, 20_000); // six streams
    ring.setPattern(RING);
    const before = rig.announced.length;
    const took = await runUntil(rig, 2 * GOAL, () => last(rig) === 'ring');
    t.diagnostic(`ring announced ${took} update periods after it started`);
    assert.ok(took <= GOAL, `ring announced after ${took} periods (announced: ${rig.announced.slice(before).map((x) => x.class).join(', ') || 'nothing'})`);
    assert.deepEqual(rig.announced.slice(before).map((x) => x.class), ['ring']);
    assert.equal(rig.controller.model.getTopology().edges.length, 6);
  });

  it('a brief mix, then a clean star: the star is announced, not irregular', async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const g = rig.generator(1000, 20_000);
    g.setPattern([...RING, [0, 3], [1, 4], [2, 5]]);
    for (let p = 0; p < 3; p++) await rig.period();
    g.setPattern(patternEdges('star', VMS));
    const took = await runUntil(rig, 2 * GOAL, () => last(rig) === 'star');
    t.diagnostic(`star announced ${took} update periods after it started`);
    assert.ok(took <= GOAL, `star after ${took} periods (announced: ${rig.announced.map((x) => x.class).join(', ') || 'nothing'})`);
    assert.deepEqual(rig.announced.map((x) => x.class), ['star'], 'nothing but the star announced');
  });

  it('a pattern starting one stream at a time is not announced before it is complete', async (t) => {
    const rig = await startRig();
    t.after(() => rig.close());
    const g = rig.generator(1000, 20_000);
    for (let k = 1; k <= RING.length; k++) {
      g.setPattern(RING.slice(0, k));
      await rig.period();
      assert.deepEqual(rig.announced.map((x) => x.class), [], `announced with ${k} of ${RING.length} streams started`);
    }
    const took = await runUntil(rig, 2 * GOAL, () => last(rig) === 'ring');
    assert.ok(took <= GOAL, `ring after ${took} periods (announced: ${rig.announced.map((x) => x.class).join(', ') || 'nothing'})`);
    assert.deepEqual(rig.announced.map((x) => x.class), ['ring']);
  });
});
