/**
 * One host of the control-channel scale bench (scale.ts): what a daemon
 * offers the controller agent (`DaemonControl`), without a data plane — its
 * VMs as ports, its backbone link to the hub with rising counters, the links
 * and rule sets the controller pushed (kept whole, as a daemon holds them),
 * and a traffic matrix that follows an application pattern:
 *
 *   hosts in groups of `groupSize` (an application each); every VM sends to
 *   the VM of the same slot on the next two hosts of its group (a ring of
 *   rings), at a rate that differs per group, so inference finds the
 *   groups and adaptation has fast paths to choose.
 *
 * Counts are per snapshot (one update period), as the daemon's counters are.
 */
import { formatMac, parseMac } from '../../src/common/mac.ts';
import type {
  DaemonControl, DaemonEvent, DaemonFacts, DesiredLink, LinkFacts, PortFacts, RuleSpec, TrafficEntry, TrafficSnapshot,
} from '../../src/control/daemon-control.ts';

export interface ScaleLayout {
  hosts: number;
  vmsPerHost: number;
  groupSize: number;
}

/** Host ids: the hub, then h0001…; index 0 is the hub. */
export function scaleHostId(i: number): string {
  return i === 0 ? 'hub' : `h${String(i).padStart(4, '0')}`;
}

/** The MAC of VM `slot` of host `i`. */
export function scaleVmMac(i: number, slot: number): string {
  return formatMac(0x02aa00000000 + i * 256 + slot);
}

/** The IP address of VM `slot` of host `i`. */
export function scaleVmIp(i: number, slot: number): string {
  return `10.${(i >> 8) & 0xff}.${i & 0xff}.${10 + slot}`;
}

/** The listen port a host reports (nothing listens there: fast paths are recorded, not dialled). */
export function scaleListenPort(i: number): number {
  return 20_000 + i;
}

export class ScaleHost implements DaemonControl {
  readonly hostId: string;
  readonly index: number;
  readonly #layout: ScaleLayout;
  ports: PortFacts[];
  links: readonly DesiredLink[] = [];
  rules: readonly RuleSpec[] = [];
  /** The rules by destination MAC (built as a set is applied: a move is checked in O(1) a host). */
  ruleTo = new Map<string, RuleSpec>();
  linksVersion = 0;
  rulesVersion = 0;
  /** Called after a set was applied (the agent acknowledges it right after). */
  onApplied: ((host: ScaleHost, kind: 'links' | 'rules') => void) | undefined;
  #since = Date.now();
  #backboneBytes = 0;
  readonly #handlers = new Set<(e: DaemonEvent) => void>();

  constructor(index: number, layout: ScaleLayout) {
    this.index = index;
    this.hostId = scaleHostId(index);
    this.#layout = layout;
    this.ports = Array.from({ length: layout.vmsPerHost }, (_, slot) => port(`vm${slot}`, scaleVmMac(index, slot), index, slot));
  }

  facts(): DaemonFacts {
    const hub = this.index === 0;
    const backbone: LinkFacts[] = hub
      ? Array.from({ length: this.#layout.hosts - 1 }, (_, i) => link(scaleHostId(i + 1), 'inbound', this.#backboneBytes))
      : [link('hub', 'outbound', this.#backboneBytes)];
    const fast = this.links.map((l) => link(l.peer, l.dial === true ? 'outbound' : 'inbound', 0, 'fast-path'));
    return {
      hostId: this.hostId, role: hub ? 'hub' : 'spoke', site: undefined,
      listen: { transport: 'tls', host: '127.0.0.1', port: scaleListenPort(this.index) },
      ports: this.ports.map((p) => ({ ...p })), links: [...backbone, ...fast], rulesVersion: this.rulesVersion, linksVersion: this.linksVersion,
    };
  }

  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void {
    this.links = links;
    this.linksVersion = version;
    this.onApplied?.(this, 'links');
  }

  applyRules(version: number, rules: readonly RuleSpec[]): void {
    this.rules = rules;
    this.ruleTo = new Map(rules.map((r) => [r.dst, r]));
    this.rulesVersion = version;
    this.onApplied?.(this, 'rules');
  }

  setDeploymentHosts(): void {}

  takeTrafficSnapshot(): TrafficSnapshot {
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.#since) / 1000);
    const { hosts, groupSize } = this.#layout;
    const group = Math.floor((this.index - 1) / groupSize);
    const entries: TrafficEntry[] = [];
    if (this.index > 0) {
      const first = 1 + group * groupSize;
      const members = Math.min(groupSize, hosts - first);
      // 1 MB/s per pair in group 0, falling with the group number: a few heavy applications, many light ones.
      const rate = Math.round(1_000_000 / (1 + group) * seconds);
      for (let step = 1; step <= 2 && step < members; step++) {
        const peer = first + ((this.index - first + step) % members);
        // The VMs of the pattern that are still here (a moved VM stops talking).
        for (let slot = 0; slot < this.#layout.vmsPerHost; slot++) {
          const mac = scaleVmMac(this.index, slot);
          if (!this.ports.some((p) => p.mac === mac)) continue;
          entries.push({ src: parseMac(mac), dst: parseMac(scaleVmMac(peer, slot)), frames: Math.ceil(rate / 1000), bytes: rate });
        }
      }
    }
    this.#backboneBytes += entries.reduce((n, e) => n + e.bytes, 0);
    const snapshot = { host: this.hostId, startMs: this.#since, endMs: Math.max(now, this.#since + 1), entries };
    this.#since = snapshot.endMs;
    return snapshot;
  }

  /** A VM leaves (its port removed) or arrives (added): the agent sends facts at once, as a daemon does. */
  removeVm(mac: string): void {
    const gone = this.ports.find((p) => p.mac === mac);
    if (gone === undefined) return;
    this.ports = this.ports.filter((p) => p !== gone);
    for (const h of this.#handlers) h({ type: 'port-removed', name: gone.name, reason: 'migrated' });
  }

  addVm(name: string, mac: string): void {
    const added = port(name, mac, this.index, 200);
    this.ports = [...this.ports, added];
    for (const h of this.#handlers) h({ type: 'port-added', port: added });
  }

  onEvent(handler: (event: DaemonEvent) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }
}

function port(name: string, mac: string, host: number, slot: number): PortFacts {
  return { name, kind: 'memory', mac, ip: scaleVmIp(host, slot), mtu: 1500, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0 };
}

function link(peer: string, direction: 'inbound' | 'outbound', bytes: number, kind: 'backbone' | 'fast-path' = 'backbone'): LinkFacts {
  return { peer, kind, state: 'up', direction, reconnects: 0, txFrames: Math.ceil(bytes / 1000), txBytes: bytes, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0 };
}
