/**
 * The clients of the control-channel scale bench (scale.ts): one process of
 * several, each running a slice of the hosts, so that their CPU is not the
 * controller's and one starved process does not stall them all. One real
 * `ControllerAgent` per host (mutual TLS with the host's certificate from
 * the deployment CA, hello with facts, traffic and facts every update
 * period, set-links / set-rules applied whole and acknowledged), each over a
 * `ScaleHost` (scale-host.ts), dialling from a loopback address of its own
 * group (127.0.0.2, 127.0.0.3, …, `perAddress` hosts each), as daemons on
 * their own machines would: the controller's per-source limits apply as in
 * a deployment.
 *
 *   node --import tsx bench/control/scale-clients.ts   (forked by scale.ts, with IPC)
 *
 * Parent → child: `{ type: 'start', init }`, `{ type: 'move', id, mac, from, to }`,
 * `{ type: 'stop' }`. Child → parent: `status` every 200 ms (welcomed, hosts
 * holding the whole rule set, fast-path links held, CPU of this process,
 * sessions dropped and attempts failed, by the reason the agents saw),
 * `agreed` once every connected host of this slice agrees with a moved VM's
 * new host.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { realClock } from '../../src/common/clock.ts';
import { ControllerAgent, type AgentState } from '../../src/dataplane/controller-agent.ts';
import { CONTROL_FEATURES } from '../../src/control/control-features.ts';
import { caFiles, hostFiles } from '../../src/pki/certs.ts';
import { ScaleHost, scaleHostId, type ScaleLayout } from './scale-host.ts';

export interface ClientsInit extends ScaleLayout {
  controlUrl: string;
  tlsDir: string;
  /** This process's hosts: indices first … first + count − 1. */
  first: number;
  count: number;
  /** Hosts sharing one loopback source address. */
  perAddress: number;
  /** Hosts of this process waiting for a welcome at once, at most, while they first start. */
  ramp: number;
  /** The agents act as daemons without rule-set patches (whole sets only, as before the feature). */
  noRulePatches?: boolean;
}

export type ToClients =
  | { type: 'start'; init: ClientsInit }
  | { type: 'move'; id: number; mac: string; from: number; to: number }
  | { type: 'stop' };

export interface ClientsStatus {
  type: 'status';
  welcomed: number;
  /** Hosts holding a rule for every VM on another host. */
  wholeRules: number;
  /** Fast-path links held (each counted at both ends). */
  fastPathEnds: number;
  cpuMs: number;
  /** Sessions that ended after their welcome, by why (the close code and reason, or the agent's own keepalive). */
  drops: Record<string, number>;
  /** Attempts that ended before a welcome, by why. */
  failures: Record<string, number>;
  /** The longest this process's event loop was held since its last status, in ms (its own stalls delay pongs and acks: the bench's, not the controller's). */
  lagMs: number;
}

export type FromClients = ClientsStatus | { type: 'agreed'; id: number } | { type: 'stopped' };

/** The loopback address host `i` dials from. */
export function sourceAddress(i: number, perAddress: number): string {
  return `127.0.0.${2 + Math.floor(i / perAddress)}`;
}

function post(m: FromClients): void {
  if (process.connected) process.send?.(m);
}

let hosts: ScaleHost[] = [];
let agents: ControllerAgent[] = [];
let watch: { id: number; mac: string; from: string; to: string } | undefined;
const drops: Record<string, number> = {};
const failures: Record<string, number> = {};
/** Per host: why its channel last closed, from the agent's own log line. */
const lastClose = new Map<string, string>();
/** Hosts whose agent cut the channel itself (keepalive, welcome timeout) just before the close. */
const cutBy = new Map<string, string>();

/** The agents' info log, read for why each channel closed (the agent logs it with the close code and reason). */
function closeReasons(): Logger {
  return pino({ level: 'info' }, {
    write(line: string): void {
      const j = JSON.parse(line) as { msg: string; host?: string; code?: number; reason?: string };
      if (j.host === undefined) return;
      if (j.msg.startsWith('controller silent')) cutBy.set(j.host, 'the agent\'s keepalive: controller silent');
      else if (j.msg.startsWith('no welcome')) cutBy.set(j.host, 'the agent\'s welcome timeout');
      else if (j.msg.startsWith('control channel closed')) {
        lastClose.set(j.host, cutBy.get(j.host) ?? `${j.code ?? '?'}${j.reason ? ` ${j.reason}` : ''}`);
        cutBy.delete(j.host);
      }
    },
  });
}

/** Whether host `h`'s rules agree with the watched VM on `to`: none there, elsewhere a rule not to the host it left. */
function agrees(h: ScaleHost, w: NonNullable<typeof watch>): boolean {
  const rule = h.ruleTo.get(w.mac);
  if (h.hostId === w.to) return rule === undefined;
  return rule !== undefined && typeof rule.action === 'object' && 'link' in rule.action && rule.action.link !== w.from;
}

function checkMove(): void {
  const w = watch;
  // Hosts not connected (still dialling, at a scale where not all are welcomed) hear of it when they are.
  if (w === undefined || !hosts.every((h, i) => agents[i]?.state !== 'connected' || agrees(h, w))) return;
  watch = undefined;
  post({ type: 'agreed', id: w.id });
}

function start(init: ClientsInit): void {
  const ca = readFileSync(caFiles(init.tlsDir).cert);
  const logger = closeReasons();
  hosts = Array.from({ length: init.count }, (_, k) => new ScaleHost(init.first + k, init));
  agents = hosts.map((h) => {
    const files = hostFiles(init.tlsDir, h.hostId);
    h.onApplied = (_host, kind) => { if (watch !== undefined && kind === 'rules') checkMove(); };
    const agent = new ControllerAgent({ daemon: h, logger, clock: realClock }, {
      url: init.controlUrl, tls: { ca, cert: readFileSync(files.cert), key: readFileSync(files.key), servername: 'controller' },
      localAddress: sourceAddress(h.index, init.perAddress),
      backoff: { initialMs: 200, maxMs: 5_000 }, welcomeTimeoutMs: 60_000, keepaliveMs: 30_000,
      ...(init.noRulePatches === true ? { features: CONTROL_FEATURES.filter((f) => f !== 'rule-patches') } : {}),
    });
    let was: AgentState = 'idle';
    agent.onStateChange((state) => {
      if (state === 'backoff' && (was === 'connected' || was === 'connecting')) {
        const why = lastClose.get(h.hostId) ?? 'unknown';
        const tally = was === 'connected' ? drops : failures;
        tally[why] = (tally[why] ?? 0) + 1;
      }
      was = state;
    });
    return agent;
  });
  // At most `ramp` of this process's hosts waiting for a welcome at once while they start (then each redials on its own).
  let next = 0;
  const ramp = setInterval(() => {
    let waiting = agents.filter((a) => a.state === 'connecting' || a.state === 'backoff').length;
    while (next < agents.length && waiting < init.ramp) {
      agents[next++]!.start();
      waiting++;
    }
    if (next === agents.length) clearInterval(ramp);
  }, 20);
  const total = init.hosts * init.vmsPerHost;
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  const timer = setInterval(() => {
    const cpu = process.cpuUsage();
    if (process.env['VNET_SCALE_CLIENT_PROFILE'] !== undefined && lag.max > 2e9) console.error(`client ${init.first}: loop held ${(lag.max / 1e6).toFixed(0)} ms`);
    post({
      type: 'status',
      welcomed: agents.filter((a) => a.state === 'connected').length,
      wholeRules: hosts.filter((h) => h.rules.length === total - h.ports.length).length,
      fastPathEnds: hosts.reduce((n, h) => n + h.links.length, 0),
      cpuMs: (cpu.user + cpu.system) / 1000,
      drops, failures, lagMs: lag.max / 1e6,
    });
    lag.reset();
  }, 200);
  timer.unref();
}

process.on('message', (m: ToClients) => {
  switch (m.type) {
    case 'start': start(m.init); return;
    case 'move': {
      const mine = (i: number): ScaleHost | undefined => hosts[i - (hosts[0]?.index ?? 0)];
      watch = { id: m.id, mac: m.mac, from: scaleHostId(m.from), to: scaleHostId(m.to) };
      mine(m.from)?.removeVm(m.mac);
      mine(m.to)?.addVm(`moved-${m.mac.replaceAll(':', '')}`, m.mac);
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
