/**
 * The clients of the control-channel scale bench (scale.ts), in a process of
 * their own so that their CPU is not the controller's: one real
 * `ControllerAgent` per host (mutual TLS with the host's certificate from the
 * deployment CA, hello with facts, traffic and facts every update period,
 * set-links / set-rules applied whole and acknowledged), each over a
 * `ScaleHost` (scale-host.ts).
 *
 *   node --import tsx bench/control/scale-clients.ts   (forked by scale.ts, with IPC)
 *
 * Parent → child: `{ type: 'start', init }`, `{ type: 'move', mac, from, to }`,
 * `{ type: 'stop' }`. Child → parent: `status` every 200 ms (welcomed, hosts
 * holding the whole rule set, fast-path links held, CPU of this process),
 * `moved` when every host's rules agree with a moved VM's new host.
 */
import { readFileSync } from 'node:fs';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { caFiles, hostFiles } from '../../src/pki/certs.ts';
import { ScaleHost, type ScaleLayout } from './scale-host.ts';

export interface ClientsInit extends ScaleLayout {
  controlUrl: string;
  tlsDir: string;
}

export type ToClients =
  | { type: 'start'; init: ClientsInit }
  | { type: 'move'; mac: string; from: number; to: number }
  | { type: 'stop' };

export interface ClientsStatus {
  type: 'status';
  welcomed: number;
  /** Hosts holding a rule for every VM on another host. */
  wholeRules: number;
  /** Fast-path links held (each counted at both ends). */
  fastPathEnds: number;
  linksApplied: number;
  rulesApplied: number;
  cpuMs: number;
  /** The last error an agent heard or met, if any (a refused hello, a dropped channel). */
  lastError: string | undefined;
}

export type FromClients = ClientsStatus | { type: 'moved'; ms: number; rulesPushed: number } | { type: 'stopped' };

function post(m: FromClients): void {
  process.send?.(m);
}

let hosts: ScaleHost[] = [];
let agents: ControllerAgent[] = [];
const applied = { links: 0, rules: 0 };
let watch: { mac: string; from: string; to: string; t0: number; pushed: number } | undefined;

/** Whether host `h`'s rules agree with the watched VM on `to`: none there, elsewhere a rule not to the host it left. */
function agrees(h: ScaleHost, w: NonNullable<typeof watch>): boolean {
  const rule = h.rules.find((r) => r.dst === w.mac);
  if (h.hostId === w.to) return rule === undefined;
  return rule !== undefined && typeof rule.action === 'object' && 'link' in rule.action && rule.action.link !== w.from;
}

function checkMove(): void {
  const w = watch;
  // Hosts not connected (still dialling, at a scale where not all are welcomed) hear of it when they are.
  if (w === undefined || !hosts.every((h, i) => agents[i]?.state !== 'connected' || agrees(h, w))) return;
  watch = undefined;
  post({ type: 'moved', ms: Date.now() - w.t0, rulesPushed: w.pushed });
}

function start(init: ClientsInit): void {
  const ca = readFileSync(caFiles(init.tlsDir).cert);
  hosts = Array.from({ length: init.hosts }, (_, i) => new ScaleHost(i, init));
  agents = hosts.map((h) => {
    const files = hostFiles(init.tlsDir, h.hostId);
    h.onApplied = (_host, kind) => {
      applied[kind]++;
      if (watch !== undefined && kind === 'rules') {
        watch.pushed++;
        checkMove();
      }
    };
    return new ControllerAgent({ daemon: h, logger: silentLogger(), clock: realClock }, {
      url: init.controlUrl, tls: { ca, cert: readFileSync(files.cert), key: readFileSync(files.key), servername: 'controller' },
      backoff: { initialMs: 200, maxMs: 5_000 }, welcomeTimeoutMs: 60_000, keepaliveMs: 30_000,
    });
  });
  // All clients dial from 127.0.0.1, and the controller admits 64 unwelcomed connections per source
  // (control-listener.ts, a flood guard): start them so that at most 32 are waiting for a welcome at once.
  let next = 0;
  const ramp = setInterval(() => {
    let waiting = agents.filter((a) => a.state === 'connecting' || a.state === 'backoff').length;
    while (next < agents.length && waiting < 32) {
      agents[next++]!.start();
      waiting++;
    }
    if (next === agents.length) clearInterval(ramp);
  }, 20);
  const total = init.hosts * init.vmsPerHost;
  const timer = setInterval(() => {
    const cpu = process.cpuUsage();
    post({
      type: 'status',
      welcomed: agents.filter((a) => a.state === 'connected').length,
      wholeRules: hosts.filter((h) => h.rules.length === total - h.ports.length).length,
      fastPathEnds: hosts.reduce((n, h) => n + h.links.length, 0),
      linksApplied: applied.links, rulesApplied: applied.rules,
      cpuMs: (cpu.user + cpu.system) / 1000,
      lastError: agents.map((a) => a.stats.lastError).filter((e) => e !== undefined).map((e) => `${e.code}: ${e.message}`).at(-1),
    });
  }, 200);
  timer.unref();
}

process.on('message', (m: ToClients) => {
  switch (m.type) {
    case 'start': start(m.init); return;
    case 'move': {
      const from = hosts[m.from]!;
      const to = hosts[m.to]!;
      watch = { mac: m.mac, from: from.hostId, to: to.hostId, t0: Date.now(), pushed: 0 };
      from.removeVm(m.mac);
      to.addVm(`moved-${m.mac.replaceAll(':', '')}`, m.mac);
      checkMove();
      return;
    }
    case 'stop': {
      void Promise.all(agents.map((a) => a.close())).then(() => {
        post({ type: 'stopped' });
        process.disconnect?.();
      });
      return;
    }
  }
});
