// Adaptation reaction time, end to end, in one process: the real controller
// (SQLite, control channel, VTTIF, adaptation), five daemons (the hub and
// four compute hosts, mutual TLS over loopback) with their controller
// agents, and eight memory-port VMs (two per host) running the Patterns
// graphs as L2 traffic (src/dataplane/traffic-generator.ts). No root.
//
// For each pattern, started from quiet, and for pattern changes, it measures
// from the moment the traffic starts (or changes):
//   topology  the controller's topology-changed event (and when the class
//             first matches the pattern)
//   links     every host pair the pattern needs has a fast-path link in the
//             controller's registry
//   carrying  those links are up at the daemons and carry frames, and the
//             hub forwards nothing any more (its tunnel tx counters stop
//             growing: the time of the last growth, confirmed by a quiet
//             window of QUIET_MS)
//   removed   after the traffic stops: the fast-path links are gone again
//             (hysteresis: the smoothed rate must fall under half the add
//             threshold)
// Figures in ms and in update periods. Goal: within 3 update periods.
//
//   node --import tsx bench/adaptation/reaction.ts [--period MS] [--smoothing MS] [--threshold X] [--rate 150000]
// (period, smoothing and threshold default to the deployment defaults, src/topology/vttif-defaults.ts)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { startDemo, type Demo } from '../../src/cli/demo-runner.ts';
import type { EventView } from '../../src/controller/api-events.ts';
import type { PatternTraffic } from '../../src/dataplane/traffic-generator.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
import { DEFAULT_DETECTION_THRESHOLD, DEFAULT_SMOOTHING_INTERVAL_MS, DEFAULT_UPDATE_PERIOD_MS } from '../../src/topology/vttif-defaults.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const PERIOD_MS = arg('period', DEFAULT_UPDATE_PERIOD_MS);
const SMOOTHING_MS = arg('smoothing', DEFAULT_SMOOTHING_INTERVAL_MS);
const THRESHOLD = arg('threshold', DEFAULT_DETECTION_THRESHOLD);
/** Bytes/s per direction of each pattern edge. */
const RATE = arg('rate', 150_000);
/** A host pair needs this much (smoothed, through the hub) before it gets a link. */
const MIN_BYTES = arg('min-bytes', 50_000);
const QUIET_MS = Math.max(300, PERIOD_MS);
const DEADLINE_MS = Math.max(20 * PERIOD_MS, 5 * SMOOTHING_MS);
const POLL_MS = 20;

const HOSTS = ['c1', 'c2', 'c3', 'c4'];
const yaml = `name: reaction
sites: [{ id: cluster, lan: { bandwidthMbit: 1000, rttMs: 0.2 } }]
hosts:
  - { id: hub, site: cluster, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
${HOSTS.map((h) => `  - { id: ${h}, site: cluster, listen: { transport: tls, host: 127.0.0.1, port: 0 } }`).join('\n')}
vms:
${Array.from({ length: 8 }, (_, i) => `  - { name: vm${i}, mac: "02:00:00:00:05:0${i}", ip: 10.50.0.${10 + i}, host: ${HOSTS[i >> 1]} }`).join('\n')}
controller:
  control: { host: 127.0.0.1, port: 0 }
  api: { host: 127.0.0.1, port: 0 }
policy:
  updatePeriodMs: ${PERIOD_MS}
  smoothingIntervalMs: ${SMOOTHING_MS}
  detectionThreshold: ${THRESHOLD}
  fastPathBudget: 6
  fastPathMinBytesPerSec: ${MIN_BYTES}
`;
const deployment = parseDeployment(yaml, 'reaction.yaml');
const hostOf = deployment.vms.map((v) => v.host);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** Host pairs (a < b) a pattern's traffic crosses. */
function neededPairs(edges: readonly (readonly [number, number])[]): string[] {
  const s = new Set<string>();
  for (const [i, j] of edges) {
    const a = hostOf[i]!;
    const b = hostOf[j]!;
    if (a !== b) s.add(a < b ? `${a}|${b}` : `${b}|${a}`);
  }
  return [...s].sort();
}

interface Row {
  label: string;
  pairs: number;
  topologyMs: number | undefined;
  topologyClass: string;
  classMs: number | undefined;
  linksMs: number | undefined;
  carryingMs: number | undefined;
  removedMs?: number | undefined;
}

class Probe {
  readonly demo: Demo;
  readonly traffic: PatternTraffic;
  readonly events: Array<{ at: number; e: EventView }> = [];

  constructor(demo: Demo) {
    this.demo = demo;
    this.traffic = demo.traffic!;
    demo.process.controller.model.subscribe((e) => {
      if (e.type === 'topology-changed' || e.type === 'decision') this.events.push({ at: Date.now(), e });
    });
  }

  hubTx(): number {
    return this.demo.daemons.get('hub')!.facts().links.reduce((s, l) => s + l.txFrames, 0);
  }

  fastPathFrames(pair: string): number | undefined {
    const [a, b] = pair.split('|') as [string, string];
    const l = this.demo.daemons.get(a)!.facts().links.find((x) => x.peer === b && x.kind === 'fast-path' && x.state === 'up');
    return l === undefined ? undefined : l.txFrames + l.rxFrames;
  }

  registryHas(pair: string): boolean {
    const [a, b] = pair.split('|') as [string, string];
    return this.demo.process.controller.model.getLink(a, b)?.kind === 'fast-path';
  }

  fastPathCount(): number {
    return this.demo.process.controller.model.listLinks().filter((l) => l.kind === 'fast-path').length;
  }

  /** Start or switch the traffic to `kind` and time the controller's reaction. */
  async measure(label: string, kind: PatternKind): Promise<Row> {
    const edges = patternEdges(kind, 8);
    const pairs = neededPairs(edges);
    const startFrames = new Map(pairs.map((p) => [p, this.fastPathFrames(p) ?? 0]));
    const t0 = Date.now();
    const mark = this.events.length;
    this.traffic.setPattern(edges);
    this.traffic.start();
    let hub = this.hubTx();
    let lastHubGrowth = t0;
    let linksAt: number | undefined;
    let carryingAt: number | undefined;
    while (Date.now() - t0 < DEADLINE_MS) {
      await sleep(POLL_MS);
      const now = Date.now();
      const h = this.hubTx();
      if (h > hub) lastHubGrowth = now;
      hub = h;
      if (linksAt === undefined && pairs.every((p) => this.registryHas(p))) linksAt = now;
      const carrying = pairs.every((p) => (this.fastPathFrames(p) ?? -1) > startFrames.get(p)!);
      if (carryingAt === undefined && carrying && now - lastHubGrowth >= QUIET_MS) carryingAt = lastHubGrowth;
      const topo = this.events.slice(mark).filter((x) => x.e.type === 'topology-changed');
      if (linksAt !== undefined && carryingAt !== undefined && topo.some((x) => x.e.type === 'topology-changed' && x.e.payload.topology.class === kind)) break;
    }
    const topo = this.events.slice(mark).flatMap((x) => (x.e.type === 'topology-changed' ? [{ at: x.at, cls: x.e.payload.topology.class }] : []));
    const match = topo.find((x) => x.cls === kind);
    return {
      label, pairs: pairs.length,
      topologyMs: topo[0] === undefined ? undefined : topo[0].at - t0,
      topologyClass: topo.map((x) => x.cls).join('→') || '-',
      classMs: match === undefined ? undefined : match.at - t0,
      linksMs: linksAt === undefined ? undefined : Math.max(0, linksAt - t0),
      carryingMs: carryingAt === undefined ? undefined : Math.max(0, carryingAt - t0),
    };
  }

  /** Stop the traffic; time until adaptation has removed every fast-path link. */
  async quiet(): Promise<number | undefined> {
    const t0 = Date.now();
    this.traffic.stop();
    try {
      await until(() => this.fastPathCount() === 0, 'fast-path links removed', 30 * PERIOD_MS);
    } catch {
      return undefined;
    }
    const removed = Date.now() - t0;
    // Let the smoothed matrix empty (and the topology go quiet) before the next start.
    await sleep(Math.max(3 * PERIOD_MS, 2 * SMOOTHING_MS));
    return removed;
  }
}

const fmt = (ms: number | undefined): string => (ms === undefined ? 'none' : `${String(Math.round(ms)).padStart(5)} ms ${(ms / PERIOD_MS).toFixed(1).padStart(4)} p`);

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'vnet-reaction-'));
  const demo = await startDemo({ logger: silentLogger() }, { deployment, workDir, ephemeralPorts: true, pattern: 'ring', cycleMs: 1e9, bytesPerSecond: RATE, netns: false });
  if (demo.traffic === undefined) throw new Error('the demo runs no memory-port traffic');
  demo.traffic.stop();
  const probe = new Probe(demo);
  const rows: Row[] = [];
  try {
    const model = demo.process.controller.model;
    await until(() => model.listHosts().every((h) => h.state === 'up') && model.listVms().every((v) => v.state === 'running'), 'every host up and VM running', 30_000);
    await sleep(2 * PERIOD_MS);
    console.log(`reaction: 8 VMs on 4 hosts + hub, update period ${PERIOD_MS} ms, smoothing ${SMOOTHING_MS} ms, detection threshold ${THRESHOLD}, ${RATE / 1000} kB/s per edge direction, add threshold ${MIN_BYTES / 1000} kB/s per host pair, budget 6`);
    for (const kind of ['ring', 'bus', 'all-to-all', 'star', 'mesh', 'tree', 'neighbour'] as const) {
      const row = await probe.measure(`${kind} (from quiet)`, kind);
      row.removedMs = await probe.quiet();
      rows.push(row);
      console.log(`  done: ${row.label}`);
    }
    for (const [from, to] of [['ring', 'all-to-all'], ['all-to-all', 'bus'], ['bus', 'star']] as const) {
      await probe.measure(`(settle ${from})`, from);
      await sleep(3 * PERIOD_MS);
      rows.push(await probe.measure(`${from} → ${to}`, to));
      console.log(`  done: ${from} → ${to}`);
      await probe.quiet();
    }
  } finally {
    await demo.close();
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log('');
  console.log(`${'case'.padEnd(22)} ${'pairs'.padStart(5)}  ${'topology event'.padEnd(16)} ${'class'.padEnd(26)} ${'class matches'.padEnd(16)} ${'links added'.padEnd(16)} ${'carrying, hub quiet'.padEnd(19)} ${'removed after stop'}`);
  for (const r of rows) {
    console.log(`${r.label.padEnd(22)} ${String(r.pairs).padStart(5)}  ${fmt(r.topologyMs).padEnd(16)} ${r.topologyClass.slice(0, 26).padEnd(26)} ${fmt(r.classMs).padEnd(16)} ${fmt(r.linksMs).padEnd(16)} ${fmt(r.carryingMs).padEnd(19)} ${r.removedMs === undefined ? '' : fmt(r.removedMs)}`);
  }
  const within = rows.filter((r) => r.carryingMs !== undefined && r.carryingMs <= 3 * PERIOD_MS).length;
  const topoWithin = rows.filter((r) => r.classMs !== undefined && r.classMs <= 3 * SMOOTHING_MS).length;
  console.log(`\ngoals: fast paths carrying the traffic within 3 update periods (${3 * PERIOD_MS} ms) in ${within}/${rows.length} cases;`);
  console.log(`       the right class announced within 3 smoothing windows (${3 * SMOOTHING_MS} ms) in ${topoWithin}/${rows.length}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
