/**
 * `vnet demo`: a whole overlay in one process, from a deployment file.
 *
 *   controller (SQLite, control channel, API + web page)
 *     └─ one daemon per host (mutual TLS over loopback), each with a
 *        controller agent and memory ports for its VMs
 *   traffic: the VMs run a Patterns-style generator (memory ports), which
 *   the controller sees as traffic matrices, classifies and adapts to.
 *   migration: each daemon has a migration agent and each VM is a model
 *   guest, so `vnet ctl migrate VM --to HOST` moves it (demo-migration.ts);
 *   the generator follows it to its new port.
 *
 * With --qemu the first VM is a real guest under QEMU (demo-qemu.ts).
 *
 * No root, no network beyond loopback. Certificates and the database live
 * under the work directory (default ./.vnet/demo) and are reused next time:
 * a VM migrated in an earlier run starts on the host the controller
 * remembers, not the deployment's (its rules already point there).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/logger.ts';
import { realClock } from '../common/clock.ts';
import { caFiles, hostFiles, initCa, issueHostCert, loadHostCredentials } from '../pki/certs.ts';
import { Daemon } from '../dataplane/daemon.ts';
import { MemoryPort } from '../dataplane/memory-port.ts';
import { TlsTransport } from '../dataplane/tls-transport.ts';
import { HostMembership } from '../dataplane/link-membership.ts';
import { ControllerAgent } from '../dataplane/controller-agent.ts';
import { formatMac, parseMac } from '../common/mac.ts';
import { PatternTraffic } from '../dataplane/traffic-generator.ts';
import { hubOf, type Deployment } from '../controller/deployment-file.ts';
import { CONTROLLER_HOST_ID, startControllerProcess, type ControllerProcess } from '../controller/launch.ts';
import type { PolicyClock } from '../controller/scheduler-clock.ts';
import { patternEdges, type PatternKind, PATTERN_KINDS } from '../topology/patterns.ts';
import { readFile } from 'node:fs/promises';
import { NetnsVms } from './demo-netns.ts';
import { addDemoVm, createDemoGuest, startDemoMigrationAgent } from './demo-migration.ts';
import type { MigrationAgent } from '../host/migration-agent.ts';
import { DemoQemu } from './demo-qemu.ts';
import { CliPrerequisiteError } from './errors.ts';

export interface DemoInit {
  deployment: Readonly<Deployment>;
  workDir: string;
  /** Listen on free ports instead of the deployment's (tests, or when those are taken). */
  ephemeralPorts: boolean;
  /** A fixed pattern, or 'cycle' through them all. */
  pattern: PatternKind | 'cycle';
  /** How long each pattern runs in 'cycle' mode. */
  cycleMs: number;
  /** Per direction of each pattern edge. */
  bytesPerSecond: number;
  /** VMs as network namespaces with TAP devices and ping traffic (root) instead of memory ports. */
  netns: boolean;
  /** The first VM a real guest under QEMU on a stream port (demo-qemu.ts). */
  qemu?: boolean | undefined;
}

export interface Demo {
  /** The deployment it runs. */
  readonly deployment: Readonly<Deployment>;
  process: ControllerProcess;
  daemons: Map<string, Daemon>;
  agents: ControllerAgent[];
  /** Each daemon's migration agent, by host id. */
  migrations: Map<string, MigrationAgent>;
  /** Ids of the migrations the controller knew before this run (its database is reused). */
  readonly migrationsBefore: ReadonlySet<string>;
  /** The memory-port generator (undefined with --netns, where the VMs ping each other). */
  traffic: PatternTraffic | undefined;
  netns: NetnsVms | undefined;
  readonly pattern: PatternKind;
  close(): Promise<void>;
}

export async function ensureDemoCertificates(certDir: string, hosts: readonly string[]): Promise<void> {
  if (!existsSync(caFiles(certDir).cert)) await initCa(certDir);
  for (const h of hosts) if (!existsSync(hostFiles(certDir, h).cert)) await issueHostCert(certDir, h);
}

/** `schedulerClock`: the scheduling policy's clock instead of the deployment's `scheduler.clock` (tests step it). */
export async function startDemo(components: { logger: Logger; schedulerClock?: PolicyClock }, init: DemoInit): Promise<Demo> {
  const { logger } = components;
  const d = init.deployment;
  if (init.netns) NetnsVms.check();
  if (init.netns && init.qemu === true) throw new CliPrerequisiteError('--qemu and --netns do not go together: the QEMU guest is on a stream port, the others on TAP devices');
  mkdirSync(init.workDir, { recursive: true });
  const certDir = join(init.workDir, 'certs');
  await ensureDemoCertificates(certDir, d.hosts.map((h) => h.id));
  // Every VM's guest first, while nothing is connected: filling them is the start's one long stretch of CPU.
  const guests = new Map(d.vms.filter((v) => init.qemu !== true || v !== d.vms[0]).map((vm) => [vm.name, createDemoGuest(vm.name, d.vms.indexOf(vm) + 1)]));
  const free = (a: { host: string; port: number } | undefined): { host: string; port: number } | undefined =>
    a === undefined ? undefined : init.ephemeralPorts ? { host: a.host, port: 0 } : a;

  const process = await startControllerProcess(
    { logger, ...(components.schedulerClock !== undefined ? { schedulerClock: components.schedulerClock } : {}) },
    {
      deployment: d,
      dbPath: join(init.workDir, 'vnet.db'),
      tlsDir: certDir,
      control: free(d.controller.control ?? { host: '127.0.0.1', port: 7400 }),
      api: free(d.controller.api ?? { host: '127.0.0.1', port: 7480 }),
      tokenFile: join(init.workDir, 'api-token'),
    },
  );
  const daemons = new Map<string, Daemon>();
  const agents: ControllerAgent[] = [];
  const migrations = new Map<string, MigrationAgent>();
  const migrationsBefore = new Set(process.controller.model.listMigrations().map((m) => m.id));
  const ca = await readFile(caFiles(certDir).cert);
  // Where each VM runs: the host the controller's store remembers (a migration in an earlier run), else the deployment's.
  const hostOf = (vm: { mac: string; host: string }): string => {
    const at = process.controller.model.getVm(formatMac(parseMac(vm.mac)))?.host;
    return at !== null && at !== undefined && d.hosts.some((h) => h.id === at) ? at : vm.host;
  };
  let traffic: PatternTraffic | undefined;
  const netns = init.netns ? new NetnsVms(logger) : undefined;
  const qemu = init.qemu === true && d.vms[0] !== undefined ? new DemoQemu(logger, init.workDir, d.vms[0].name) : undefined;
  // The generator's VMs: all but the QEMU guest.
  const generated = d.vms.filter((v) => v.name !== qemu?.vm);
  let cycle: { cancel(): void } | undefined;
  const closeAll = async (): Promise<void> => {
    cycle?.cancel();
    traffic?.stop();
    netns?.stopTraffic();
    await Promise.all(agents.map((a) => a.close()));
    await Promise.all([...migrations.values()].map((m) => m.close()));
    await qemu?.close(migrations.values());
    await Promise.all([...daemons.values()].map((x) => x.close()));
    await netns?.close();
    await process.close();
  };
  try {
    // The hub first: the spokes dial it.
    const hub = hubOf(d);
    const ordered = [hub, ...d.hosts.filter((h) => h.id !== hub.id)];
    for (const h of ordered) {
      const creds = await loadHostCredentials(certDir, h.id);
      // The deployment's hosts, until the controller's list arrives with its first set-links.
      const membership = new HostMembership(d.hosts.map((x) => x.id));
      const transport = new TlsTransport({ logger }, { localHost: h.id, ...creds, membership });
      const listen = free(h.listen ?? { host: '127.0.0.1', port: 0 });
      const hubDaemon = daemons.get(hub.id);
      const daemon = await Daemon.start(
        { logger, transport, membership },
        {
          hostId: h.id,
          role: h.id === hub.id ? 'hub' : 'spoke',
          site: h.site,
          listen,
          hub: hubDaemon === undefined ? undefined : { host: hubDaemon.listenAddress!.host, port: hubDaemon.listenAddress!.port, id: hub.id },
        },
      );
      daemons.set(h.id, daemon);
      const migration = await startDemoMigrationAgent({ logger, daemon, traffic: () => traffic, qemu: qemu?.host(h.id) }, { credentials: creds, netns: netns !== undefined });
      migrations.set(h.id, migration);
      for (const vm of d.vms.filter((v) => hostOf(v) === h.id)) {
        if (vm.name === qemu?.vm) {
          qemu.start(daemon, migration, vm);
          continue;
        }
        const port = netns === undefined ? new MemoryPort({ name: vm.name, mac: parseMac(vm.mac) }) : (await netns.create(vm, d.vms.indexOf(vm))).port;
        daemon.addPort(port, vm.ip);
        addDemoVm(migration, { name: vm.name, port, guest: guests.get(vm.name)! }, () => traffic);
      }
      const files = hostFiles(certDir, h.id);
      const [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)]);
      const agent = new ControllerAgent({ daemon, logger, clock: realClock, migrations: migration }, { url: process.controlUrl, tls: { ca, cert, key, servername: CONTROLLER_HOST_ID } });
      agent.start();
      agents.push(agent);
    }

    await backboneUp([...daemons.values()], hub.id, 15_000);
    let index = init.pattern === 'cycle' ? 0 : PATTERN_KINDS.indexOf(init.pattern);
    const edgesOf = (k: PatternKind) => patternEdges(k, generated.length);
    // Ping pacing for the same byte rate: a request and a reply of payload+42 bytes per interval.
    const PING_PAYLOAD = 1000;
    const pingInterval = Math.max(0.01, (PING_PAYLOAD + 42) / init.bytesPerSecond);
    let setPattern: (k: PatternKind) => void;
    if (netns !== undefined) {
      await netns.plug();
      setPattern = (k) => netns.setPattern(edgesOf(k), PING_PAYLOAD, pingInterval);
    } else {
      const vms = generated.map((vm) => ({ name: vm.name, port: daemons.get(hostOf(vm))!.port(vm.name) as MemoryPort }));
      const t = new PatternTraffic({ clock: realClock }, { vms, edges: edgesOf(PATTERN_KINDS[index]!), bytesPerSecond: init.bytesPerSecond });
      t.start();
      traffic = t;
      setPattern = (k) => t.setPattern(edgesOf(k));
    }
    setPattern(PATTERN_KINDS[index]!);
    if (init.pattern === 'cycle') {
      cycle = realClock.setInterval(() => {
        index = (index + 1) % PATTERN_KINDS.length;
        setPattern(PATTERN_KINDS[index]!);
        logger.info({ pattern: PATTERN_KINDS[index] }, 'demo traffic switched pattern');
      }, init.cycleMs);
    }
    return {
      deployment: d,
      process,
      daemons,
      agents,
      migrations,
      migrationsBefore,
      traffic,
      netns,
      get pattern() {
        return PATTERN_KINDS[index]!;
      },
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Resolve once every spoke has its backbone link to the hub up (both ends), or fail after `timeoutMs`. */
function backboneUp(daemons: readonly Daemon[], hubId: string, timeoutMs: number): Promise<void> {
  const hub = daemons.find((d) => d.hostId === hubId)!;
  const spokes = daemons.filter((d) => d !== hub);
  const up = (): boolean =>
    spokes.every((d) => d.facts().links.some((l) => l.peer === hubId && l.state === 'up')) &&
    hub.facts().links.filter((l) => l.kind === 'backbone' && l.state === 'up').length >= spokes.length;
  if (up()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (err?: Error): void => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (err === undefined) resolve();
      else reject(err);
    };
    const timer = setTimeout(() => done(new Error(`the backbone did not come up within ${timeoutMs} ms`)), timeoutMs);
    for (const d of daemons) offs.push(d.onEvent((e) => e.type === 'link-up' && up() && done()));
  });
}
