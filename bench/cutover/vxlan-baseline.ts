/**
 * The baseline most deployments use for a VM that moves: Linux bridges on
 * each host joined by kernel VXLAN (head-end replication, flood and learn),
 * the VM's port moved to the other host's bridge, and the VM's own
 * gratuitous ARP (arp_notify on carrier up) to tell the network.
 *
 *   ul (underlay bridge 10.251.0.0/24)
 *   h1 ── br0 ── vx0        h2 ── br0 ── vx0        h3 ── br0 ── vx0
 *    └─ px ── vmx (moves to h2)                      └─ pp ── vmp (pings vmx)
 *
 * Every address lives in namespaces this program creates and removes.
 */
import type { ControllerEvent, MoveFigures } from './phases.ts';
import { spawnSync } from 'node:child_process';
import type { SchedWatch } from './sched-watch.ts';
import type { GapAccount } from './timeline.ts';
import { answersAgainMs, startPing, startStream, type PingFigures, type StreamFigures } from './probes.ts';

export interface CutoverFigures {
  path: string;
  ping: PingFigures;
  stream: StreamFigures;
  /** From the move (the pause; a QEMU guest's STOP) until the VM answers again, ms (run.ts says how each row takes it). */
  cutoverMs: number;
  /** Frames the path itself counted lost at the cutover (undefined: it does not count them). */
  framesLost?: number | undefined;
  /** The migration's own cutover time, from its API: the pause until every daemon acknowledged the new rules, ms. */
  acknowledgedMs?: number | undefined;
  /** A QEMU guest's own downtime: its source QEMU's STOP to its destination's RESUME, ms. */
  guestDowntimeMs?: number | undefined;
  /** vnet, several moves in one run: each move's migration (its spans) and ping window (phases.ts). */
  moves?: MoveFigures[] | undefined;
  /** vnet: what the controller did meanwhile (VM moves, links, decisions), for the gaps. */
  events?: ControllerEvent[] | undefined;
  /** vnet: each probe's and daemon's scheduling over the run, for the ping gaps (sched-watch.ts). */
  sched?: SchedWatch | undefined;
  /** vnet, a QEMU guest: the move's time line, printed lines (timeline.ts; `--timeline`). */
  timeline?: string[] | undefined;
  /** vnet, a QEMU guest: how the ping's gap at the cutover divides up (timeline.ts). */
  gapAccount?: GapAccount | undefined;
}

function sh(cmd: string[], check = true): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface VxlanHosts {
  readonly ns: { ul: string; h1: string; h2: string; h3: string; vmp: string };
  /** `ip -n NS ...` */
  ip(n: string, ...args: string[]): string;
  /** A VM: namespace `vmNs` on a veth into host `host`'s bridge as `port`. */
  vm(vmNs: string, host: string, port: string, addr: string, mac: string): void;
  /** vmp (10.252.0.20) pings `ip` until it answers. */
  reach(ip: string): void;
  remove(): void;
}

/** Three hosts (h1, h2, h3) with bridges joined by VXLAN over an underlay bridge, and VM p on h3 (10.252.0.20). */
export function vxlanHosts(tag: string, extra: readonly string[] = []): VxlanHosts {
  const ns = { ul: `cb-ul-${tag}`, h1: `cb-h1-${tag}`, h2: `cb-h2-${tag}`, h3: `cb-h3-${tag}`, vmp: `cb-vp-${tag}` };
  const all = [...Object.values(ns), ...extra];
  const ip = (n: string, ...args: string[]): string => sh(['ip', '-n', n, ...args]);
  const remove = (): void => { for (const n of all) spawnSync('ip', ['netns', 'del', n]); };
  try {
    for (const n of all) {
      sh(['ip', 'netns', 'add', n]);
      ip(n, 'link', 'set', 'lo', 'up');
    }
    ip(ns.ul, 'link', 'add', 'ulbr', 'type', 'bridge');
    ip(ns.ul, 'link', 'set', 'ulbr', 'up');
    const hosts = [ns.h1, ns.h2, ns.h3];
    hosts.forEach((h, i) => {
      sh(['ip', 'link', 'add', `cbu${i}${tag}`, 'type', 'veth', 'peer', 'name', `cbh${i}${tag}`]);
      sh(['ip', 'link', 'set', `cbu${i}${tag}`, 'netns', ns.ul]);
      sh(['ip', 'link', 'set', `cbh${i}${tag}`, 'netns', h]);
      ip(ns.ul, 'link', 'set', `cbu${i}${tag}`, 'master', 'ulbr', 'up');
      ip(h, 'link', 'set', `cbh${i}${tag}`, 'name', 'ul0');
      ip(h, 'addr', 'add', `10.251.0.${i + 1}/24`, 'dev', 'ul0');
      ip(h, 'link', 'set', 'ul0', 'up');
      ip(h, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'dstport', '4789', 'local', `10.251.0.${i + 1}`, 'dev', 'ul0');
      for (let j = 0; j < 3; j++) if (j !== i) sh(['bridge', '-n', h, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', `10.251.0.${j + 1}`]);
      ip(h, 'link', 'add', 'br0', 'type', 'bridge');
      ip(h, 'link', 'set', 'vx0', 'master', 'br0', 'up');
      ip(h, 'link', 'set', 'br0', 'up');
    });
  } catch (err) {
    remove();
    throw err;
  }
  const vm = (vmNs: string, host: string, port: string, addr: string, mac: string): void => {
    sh(['ip', 'link', 'add', `${port}${tag}`, 'type', 'veth', 'peer', 'name', `${port}v${tag}`]);
    sh(['ip', 'link', 'set', `${port}${tag}`, 'netns', host]);
    sh(['ip', 'link', 'set', `${port}v${tag}`, 'netns', vmNs]);
    ip(host, 'link', 'set', `${port}${tag}`, 'name', port);
    ip(host, 'link', 'set', port, 'master', 'br0', 'up');
    ip(vmNs, 'link', 'set', `${port}v${tag}`, 'name', 'eth0');
    ip(vmNs, 'link', 'set', 'eth0', 'address', mac);
    // VXLAN's 50 bytes of encapsulation: a VM on it gets an MTU of 1450, as deployments set.
    ip(vmNs, 'link', 'set', 'eth0', 'mtu', '1450');
    sh(['ip', 'netns', 'exec', vmNs, 'sysctl', '-qw', 'net.ipv4.conf.eth0.arp_notify=1']);
    ip(vmNs, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ip(vmNs, 'link', 'set', 'eth0', 'up');
  };
  try {
    vm(ns.vmp, ns.h3, 'pp', '10.252.0.20', '02:00:00:0c:00:20');
  } catch (err) {
    remove();
    throw err;
  }
  const reach = (to: string): void => {
    // A guest that has just booted may take a few seconds to answer (its NIC's link coming up).
    for (let i = 0; i < 30; i++) if (spawnSync('ip', ['netns', 'exec', ns.vmp, 'ping', '-c', '1', '-W', '1', to]).status === 0) break;
    sh(['ip', 'netns', 'exec', ns.vmp, 'ping', '-c', '3', '-i', '0.2', '-W', '2', to]);
  };
  return { ns, ip, vm, reach, remove };
}

export async function vxlanBaseline(tag: string): Promise<CutoverFigures> {
  const vmx = `cb-vx-${tag}`;
  const net = vxlanHosts(tag, [vmx]);
  const { ns, ip } = net;
  try {
    net.vm(vmx, ns.h1, 'px', '10.252.0.10', '02:00:00:0c:00:10');
    net.reach('10.252.0.10');

    const stream = await startStream(vmx, ns.vmp, '10.252.0.10', 5301);
    const ping = startPing(ns.vmp, '10.252.0.10', 400); // 4 s at 10 ms
    await sleep(1500);
    // The move: the VM pauses, its port goes to h2's bridge, it resumes and (carrier up) announces itself.
    for (const pid of stream.serverPids()) process.kill(pid, 'SIGSTOP');
    ip(ns.h1, 'link', 'set', 'px', 'netns', ns.h2);
    // The VM is off h1's bridge from here (vnet's pause: its port held at the source).
    const t0 = Date.now();
    ip(ns.h2, 'link', 'set', 'px', 'master', 'br0', 'up');
    for (const pid of stream.serverPids()) process.kill(pid, 'SIGCONT');
    // Until it answers a probe (bounded), then the figure from the 10 ms ping, as vnet's row takes it.
    for (let i = 0; i < 500; i++) {
      const r = spawnSync('ip', ['netns', 'exec', ns.vmp, 'ping', '-c', '1', '-W', '0.02', '-n', '10.252.0.10'], { encoding: 'utf8' });
      if (r.status === 0) break;
    }
    const pingFigures = await ping.done;
    const streamFigures = await stream.stop();
    return { path: 'kernel VXLAN, flood and learn', ping: pingFigures, stream: streamFigures, cutoverMs: answersAgainMs(pingFigures, t0) };
  } finally {
    net.remove();
  }
}
