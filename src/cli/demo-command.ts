import { Command, InvalidArgumentError, Option } from 'commander';
import { resolve, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRootLogger } from '../common/logger.ts';
import { ConfigError } from '../common/errors.ts';
import { loadDeploymentFile } from '../controller/deployment-file.ts';
import { pageUrlFromTokenFile } from '../controller/api/operator-api.ts';
import { PATTERN_KINDS, type PatternKind } from '../topology/patterns.ts';
import { startDemo, type Demo } from './demo-runner.ts';
import { migrationCounts } from './demo-migration.ts';
import { schedulePart, SUN_DEMO_TOPOLOGY, withDayLength } from './demo-schedule.ts';
import { formatMac, parseMac, type Mac } from '../common/mac.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_DEMO_TOPOLOGY = join(ROOT, 'topologies/bsp-8.yaml');

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

/** One line for the terminal: what the overlay is doing now. */
export function summaryLine(demo: Demo): string {
  const m = demo.process.controller.model;
  const hosts = m.listHosts();
  const links = m.listLinks();
  const up = hosts.filter((h) => h.state === 'up').length;
  const fast = links.filter((l) => l.kind === 'fast-path');
  const topo = m.getTopology();
  let sent = 0;
  let delivered = 0;
  for (const daemon of demo.daemons.values()) {
    for (const p of daemon.facts().ports) {
      sent += p.rxBytes; // from the VM into the overlay
      delivered += p.txBytes;
    }
  }
  return [
    `hosts ${up}/${hosts.length} up`,
    `links ${links.length - fast.length} backbone + ${fast.length} fast-path`,
    `traffic "${demo.pattern}": ${(sent / 1e6).toFixed(1)} MB sent, ${(delivered / 1e6).toFixed(1)} MB delivered`,
    `inferred: ${topo.class}${topo.centre ? ` (centre ${topo.centre})` : ''} ${(topo.confidence * 100).toFixed(0)}%`,
    ...[schedulePart(m.getPlacement(), demo.deployment, (vm) => m.listVms().find((v) => v.name === vm)?.host ?? undefined)].filter((x) => x !== undefined),
    migrationsPart(demo),
  ].join(' | ');
}

/** `migrations N (ok M), frames lost K`: this run's migrations, and the generator's frames that never arrived (see traffic-generator.ts). */
function migrationsPart(demo: Demo): string {
  const { total, succeeded } = migrationCounts(demo.process.controller.model.listMigrations(), demo.migrationsBefore);
  const lost = demo.traffic === undefined ? '' : `, frames lost ${demo.traffic.stats.lostFrames}`;
  return `migrations ${total} (ok ${succeeded})${lost}`;
}

/** Which flows lost the frames counted so far, by VM name ("bsp-3 → bsp-1 8, …"), or undefined if none. */
export function lossLine(demo: Demo, names: ReadonlyMap<Mac, string>): string | undefined {
  const flows = demo.traffic?.lossByFlow() ?? [];
  if (flows.length === 0) return undefined;
  const name = (mac: Mac): string => names.get(mac) ?? formatMac(mac);
  return `frames lost by flow: ${flows.map((f) => `${name(f.src)} → ${name(f.dst)} ${f.lost}`).join(', ')}`;
}

/** `vnet demo [topology.yaml]`: the whole overlay on loopback until Ctrl-C. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run a controller, a hub and the hosts\' daemons with VMs and traffic, on loopback (no root needed)')
    .argument('[topology]', `deployment file (default ${DEFAULT_DEMO_TOPOLOGY}; with --sun ${SUN_DEMO_TOPOLOGY})`)
    .option('--work-dir <dir>', 'certificates, database and API token', '.vnet/demo')
    .addOption(new Option('--pattern <kind>', 'traffic pattern, or cycle through all').choices([...PATTERN_KINDS, 'cycle']).default('cycle'))
    .option('--cycle <seconds>', 'seconds per pattern when cycling', positive, 40)
    .option('--rate <kB/s>', 'traffic per direction of each pattern edge, kB/s', positive, 200)
    .option('--sun', 'a compressed day: the follow-the-sun scheduler moves the ZooKeeper master live between Virginia, Frankfurt and Tokyo (topologies/follow-the-sun-day.yaml, a day in 2 minutes)', false)
    .option('--day <seconds>', 'how long the scheduler\'s day lasts, in wall seconds (scheduler.clock.speedup = 86400 / seconds)', positive)
    .option('--netns', 'VMs as network namespaces with TAP devices, pinging each other (root)', false)
    .option('--qemu', 'the first VM a real Linux guest under QEMU on a stream port (no root; qemu-system-x86 and scripts/guest-build.sh\'s packages)', false)
    .option('--ephemeral-ports', 'listen on free ports instead of the deployment\'s', false)
    .option('--summary-every <seconds>', 'print a summary line this often', positive, 2)
    .option('--exit-after <seconds>', 'stop by itself after this long (for scripts)', positive)
    .action(async (topologyArg: string | undefined, opts: Record<string, unknown>) => {
      const topology = topologyArg ?? (opts.sun === true ? SUN_DEMO_TOPOLOGY : DEFAULT_DEMO_TOPOLOGY);
      const logger = createRootLogger({ level: process.env.VNET_LOG_LEVEL ?? 'warn' });
      let demo: Demo;
      try {
        if (opts.sun === true && topologyArg !== undefined) throw new ConfigError('--sun runs its own deployment file; give --sun or a topology, not both', { file: 'command line', key: 'sun' });
        const loaded = loadDeploymentFile(topology);
        const deployment = opts.day === undefined ? loaded : withDayLength(loaded, Number(opts.day));
        demo = await startDemo(
          { logger },
          {
            deployment,
            workDir: resolve(String(opts.workDir)),
            ephemeralPorts: Boolean(opts.ephemeralPorts),
            pattern: opts.pattern as PatternKind | 'cycle',
            cycleMs: Number(opts.cycle) * 1000,
            bytesPerSecond: Number(opts.rate) * 1000,
            netns: Boolean(opts.netns),
            qemu: Boolean(opts.qemu),
          },
        );
        console.log(`vnet demo: ${deployment.name} — ${deployment.hosts.length} hosts, ${deployment.vms.length} VMs`);
        console.log(`web page:   ${await pageUrlFromTokenFile(demo.process.api.url, join(String(opts.workDir), 'api-token'), demo.process.controller.tokens)}`);
        console.log(`API:        ${demo.process.api.url}   (token in ${join(String(opts.workDir), 'api-token')})`);
        console.log(`vnet ctl:   VNET_CONTROLLER=${demo.process.api.url} VNET_TOKEN_FILE=${join(String(opts.workDir), 'api-token')} vnet ctl topology`);
        const vm = deployment.vms[0];
        const from = vm === undefined ? undefined : demo.process.controller.model.listVms().find((v) => v.name === vm.name)?.host ?? vm.host;
        const to = vm === undefined ? undefined : deployment.hosts.find((h) => h.id !== from && !h.hub)?.id;
        if (vm !== undefined && to !== undefined && !Boolean(opts.netns)) console.log(`migrate:    vnet ctl migrate ${vm.name} --to ${to} --watch   (same environment)`);
        const sched = deployment.scheduler;
        if (sched !== undefined) {
          const day = sched.clock.speedup === 1 ? '' : `, its day in ${+(86_400 / sched.clock.speedup).toFixed(1)} s of wall time`;
          console.log(`scheduler:  ${sched.policy}${day}   (vnet ctl placement, same environment)`);
        }
        console.log('Ctrl-C to stop.');
      } catch (err) {
        const message = err instanceof ConfigError ? err.message : (err as Error).message;
        console.error(`vnet demo: ${message}`);
        process.exitCode = 2;
        return;
      }
      const names = new Map(demo.process.controller.model.listVms().flatMap((v) => (v.name === null ? [] : [[parseMac(v.mac), v.name] as const])));
      let lostShown = 0;
      const ticker = setInterval(() => {
        console.log(summaryLine(demo));
        const lost = demo.traffic?.stats.lostFrames ?? 0;
        if (lost !== lostShown) {
          lostShown = lost;
          const line = lossLine(demo, names);
          if (line !== undefined) console.log(line);
        }
      }, Number(opts.summaryEvery) * 1000);
      let stopping = false;
      const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        clearInterval(ticker);
        console.log(`\n${signal}: shutting down`);
        await demo.close();
        console.log('stopped cleanly');
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
      if (opts.exitAfter !== undefined) setTimeout(() => void stop('time is up'), Number(opts.exitAfter) * 1000);
    });
}
