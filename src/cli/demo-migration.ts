/**
 * Live migration in `vnet demo`: every in-process daemon gets a migration
 * agent (as `vnet daemon` does, src/host/daemon-runner.ts) with a mutual-TLS
 * channel listener on loopback (port 0) and the demo's host certificate, and
 * every VM is a model-guest VM runtime. `vnet ctl migrate VM --to HOST` then
 * moves a VM's guest with the engine, holds and relays its frames at the
 * cutover, and the controller's page shows the progress.
 *
 * The traffic generator follows the VM: the port the destination creates
 * for it (`makePort`) is counted from the moment it exists, held frames
 * included; the VM's traffic source stops with its guest at the source's
 * pause and, at the destination's resume, re-points the VM to its new port
 * and starts it sending again.
 *
 * With --netns (TAP ports in namespaces) the agents answer every migration
 * `failed` (VNET_ERR_HOST_MIGRATION_UNAVAILABLE): moving a namespace VM is
 * not part of the demo.
 */
import type { Logger } from '../common/logger.ts';
import { realClock } from '../common/clock.ts';
import { parseMac } from '../common/mac.ts';
import type { Daemon } from '../dataplane/daemon.ts';
import { MemoryPort } from '../dataplane/memory-port.ts';
import type { Port } from '../dataplane/port.ts';
import type { PatternTraffic } from '../dataplane/traffic-generator.ts';
import type { MigrationView } from '../controller/api-views.ts';
import { MigrationUnavailableError } from '../host/errors.ts';
import { MigrationAgent } from '../host/migration-agent.ts';
import { MigrationChannelListener } from '../host/migration-channel.ts';
import type { QemuHost } from '../host/qemu-host.ts';
import { createModelGuest, ModelGuestVm, type ModelGuestSpec, type TrafficSource } from '../host/vm-runtime.ts';
import type { ModelGuest } from '../migration/guests/memory-guest.ts';
import type { TlsCredentials } from '../pki/certs.ts';

/**
 * The demo's guests: small enough to move in about a second over loopback,
 * busy enough that the pre-copy has rounds to show (NAS MG's dirtying scaled
 * to 32 MiB: about a thousand pages a second, so round 0 leaves a few
 * hundred pages for round 1).
 */
export const DEMO_GUEST: ModelGuestSpec = Object.freeze({ profile: 'npb-mg', memoryMiB: 32, diskMiB: 4 });

/** Progress reports this often: a demo migration lasts about a second, and the page should see its rounds. */
export const DEMO_PROGRESS_EVERY_MS = 50;

/** The generator's share of one VM: it sends from `port` while the VM's guest runs. */
export function generatorSource(traffic: () => PatternTraffic | undefined, name: string, port: MemoryPort): TrafficSource {
  return {
    start() {
      const t = traffic();
      if (t === undefined || t.portOf(name) === undefined) return;
      t.movePort(name, port);
      t.resume(name);
    },
    stop() {
      const t = traffic();
      if (t !== undefined && t.portOf(name) !== undefined) t.pause(name);
    },
  };
}

export interface DemoMigrationInit {
  readonly credentials: TlsCredentials;
  /** VMs are namespace VMs (TAP ports): migration unavailable. */
  readonly netns: boolean;
}

/** A daemon's migration agent for the demo: channel on 127.0.0.1:0, arriving VMs on memory ports the generator follows. */
export async function startDemoMigrationAgent(
  components: { logger: Logger; daemon: Daemon; traffic: () => PatternTraffic | undefined; qemu?: QemuHost | undefined },
  init: DemoMigrationInit,
): Promise<MigrationAgent> {
  const { logger, daemon, traffic } = components;
  const base = { daemon, logger, clock: realClock };
  if (init.netns) {
    return new MigrationAgent(base, { unavailable: new MigrationUnavailableError('vnet demo --netns does not migrate namespace VMs; run the demo without --netns') });
  }
  const channel = await MigrationChannelListener.listen({ logger, clock: realClock }, { ...init.credentials, host: '127.0.0.1', port: 0 });
  return new MigrationAgent({
    ...base,
    qemu: components.qemu,
    channel,
    credentials: init.credentials,
    makePort: (vm) => {
      const port = new MemoryPort({ name: vm.port, mac: parseMac(vm.mac) });
      // Count what reaches the VM here from the start: the held frames are delivered before it resumes.
      traffic()?.receiveOn(port);
      return port;
    },
    trafficFor: (vm, port: Port) => (port instanceof MemoryPort ? generatorSource(traffic, vm.name ?? vm.port, port) : undefined),
  }, { progressEveryMs: DEMO_PROGRESS_EVERY_MS });
}

/**
 * A demo VM's guest, its memory and disk filled (about 70 ms of CPU each,
 * 8 of them in bsp-8): the demo makes them all before it starts the
 * controller and the daemons, whose links and handshakes (the same process)
 * would otherwise wait behind the fills.
 */
export function createDemoGuest(name: string, seed: number): ModelGuest {
  return createModelGuest(name, { ...DEMO_GUEST, seed }, realClock.now());
}

/** Register a VM the demo started on `port` as a model-guest VM runtime (its guest from createDemoGuest), its traffic the generator's, and start it. */
export function addDemoVm(
  agent: MigrationAgent,
  vm: { name: string; port: Port; guest: ModelGuest },
  traffic: () => PatternTraffic | undefined,
): ModelGuestVm {
  const guest = vm.guest;
  const source = vm.port instanceof MemoryPort ? generatorSource(traffic, vm.name, vm.port) : undefined;
  const runtime = new ModelGuestVm({ clock: realClock }, { name: vm.name, mac: vm.port.mac, port: vm.port.name, guest, traffic: source });
  agent.addVm(runtime);
  runtime.start();
  return runtime;
}

/** The migrations of this run (not those a reused database remembers): how many, and how many succeeded. */
export function migrationCounts(migrations: readonly MigrationView[], before: ReadonlySet<string>): { total: number; succeeded: number } {
  const mine = migrations.filter((m) => !before.has(m.id));
  return { total: mine.length, succeeded: mine.filter((m) => m.state === 'succeeded').length };
}
