import type { Mac } from '../common/mac.ts';
import type { RuleSpec } from './rule-spec.ts';

export type { RuleSpec } from './rule-spec.ts';

/**
 * What a running daemon offers to whoever steers it: the local admin
 * interface and the controller agent (`src/dataplane/controller-agent.ts`),
 * and the facts it reports to the controller. The daemon reports facts and
 * applies desired state; it never decides desired state itself. The controller agent pushes *whole* desired sets (links,
 * rules) with a version, so applying the same push twice is a no-op.
 */

export type LinkKind = 'backbone' | 'fast-path';
export type TransportKind = 'tcp' | 'tls' | 'memory';
export type DaemonRole = 'hub' | 'spoke';

export interface PortFacts {
  name: string;
  kind: 'tap' | 'memory' | 'stream' | 'packet';
  mac: string; // "02:00:00:00:00:01"
  ip: string | undefined; // configured or learned from ARP
  mtu: number;
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  txDropped: number;
  /** The port's security policy in brief and what it dropped (port-security.ts); absent from older daemons. */
  security?: PortSecurityFacts;
  /** A packet port's own drops (packet-port.ts); on the wire only with the `port-packet-counters` feature (control-features.ts). */
  packet?: PacketPortCounters;
}

/**
 * What a packet port (`type: packet`, packet-port.ts) refused before the
 * daemon saw a frame, and what the kernel dropped for its socket: frames
 * from the VM since the port was added.
 */
export interface PacketPortCounters {
  /** Shorter than an Ethernet header. */
  runts: number;
  /** Over MTU + 18 bytes: the socket truncated them (GSO super-frames included). */
  tooLarge: number;
  /** Refused by the address lock: a source MAC (or ARP sender MAC) not the VM's. */
  spoofedMac: number;
  /** Refused by the address lock: an IPv4, ARP or IPv6 source not the VM's. */
  spoofedIp: number;
  /** An IPv4/ARP/IPv6 header cut short (the lock cannot read the source). */
  malformed: number;
  /** Dropped by the kernel for the port's socket (its receive buffer was full; PACKET_STATISTICS). */
  kernelDrops: number;
}

export const PACKET_PORT_COUNTERS: readonly (keyof PacketPortCounters)[] = ['runts', 'tooLarge', 'spoofedMac', 'spoofedIp', 'malformed', 'kernelDrops'];

/** Each packet port counter by the name metrics and `vnet status` give it (too-large: truncated by the socket; kernel: the kernel's drops). */
export function packetDropReasons(c: Readonly<PacketPortCounters>): Array<[string, number]> {
  return [['spoofed-mac', c.spoofedMac], ['spoofed-ip', c.spoofedIp], ['too-large', c.tooLarge], ['runts', c.runts], ['malformed', c.malformed], ['kernel', c.kernelDrops]];
}

/** The packet port counters of `s` and nothing else (a packet port counts more; facts carry exactly these). */
export function packetPortCounters(s: Readonly<PacketPortCounters>): PacketPortCounters {
  return { runts: s.runts, tooLarge: s.tooLarge, spoofedMac: s.spoofedMac, spoofedIp: s.spoofedIp, malformed: s.malformed, kernelDrops: s.kernelDrops };
}

/** A port limit: what a VM did that its port refused (docs/security.md, "What a VM can do to other VMs"). */
export type PortLimit = 'spoofed-source' | 'mac-limit' | 'mac-rate' | 'flood-rate';

export const PORT_LIMITS: readonly PortLimit[] = ['spoofed-source', 'mac-limit', 'mac-rate', 'flood-rate'];

/** A port's lock, the MACs learned behind it, and the frames each limit dropped since it was added. */
export type PortSecurityFacts = { locked: boolean; learnedMacs: number } & Record<PortLimit, number>;

/**
 * The counters of one link, as the link keeps them, the daemon reports them
 * and the controller stores them: the one list of them.
 */
export interface LinkCounters {
  txFrames: number;
  /** Ethernet bytes (frame.data), without protocol or offload headers. */
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames not sent: backlog over the high-water mark, link not open, or malformed. */
  txDropped: number;
  decodeErrors: number;
}

/** The counters of `s` and nothing else (a link's stats carry more; the wire and the store take exactly these). */
export function linkCounters(s: LinkCounters | undefined): LinkCounters {
  if (s === undefined) return { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0 };
  return { txFrames: s.txFrames, txBytes: s.txBytes, rxFrames: s.rxFrames, rxBytes: s.rxBytes, txDropped: s.txDropped, decodeErrors: s.decodeErrors };
}

export type LinkState = 'up' | 'connecting' | 'down';

/** A link as a daemon reports it: its counters since it was first opened, and how often it was re-opened. */
export interface LinkFacts extends LinkCounters {
  peer: string;
  kind: LinkKind;
  state: LinkState;
  /** Who opened it: we dialled, or the peer did. */
  direction: 'outbound' | 'inbound';
  reconnects: number;
}

export interface ListenAddress {
  transport: TransportKind;
  host: string;
  port: number;
}

export interface DaemonFacts {
  hostId: string;
  role: DaemonRole;
  site: string | undefined;
  listen: ListenAddress | undefined;
  ports: PortFacts[];
  links: LinkFacts[];
  rulesVersion: number;
  linksVersion: number;
  /** Frames whose source MAC was seen away from its home (a local port, or where the controller placed it); absent from older daemons. */
  macConflicts?: number;
}

/** A fast-path link the controller wants: dial `address` unless the peer dials us (lower host id dials). */
export interface DesiredLink {
  peer: string;
  address: ListenAddress;
  reason: string;
  /** Whether this side dials; default: the side with the lower host id. */
  dial?: boolean | undefined;
}

export interface TrafficEntry {
  src: Mac;
  dst: Mac;
  frames: number;
  bytes: number;
}

export interface TrafficSnapshot {
  host: string;
  startMs: number; // wall-clock ms since the epoch (the daemon's Clock.wallNow())
  endMs: number;
  entries: TrafficEntry[];
}

export type DaemonEvent =
  | { type: 'port-added'; port: PortFacts }
  | { type: 'port-removed'; name: string; reason: string }
  | { type: 'link-up'; peer: string; kind: LinkKind }
  | { type: 'link-down'; peer: string; kind: LinkKind; reason: string }
  /** A MAC seen away from its home, not learned; `frames` since the previous report of it (rate limited). */
  | { type: 'mac-conflict'; mac: string; seenAt: string; home: string; by: 'port' | 'controller'; frames: number }
  /** A port limit dropped frames; `frames` since the previous report (rate limited). */
  | { type: 'port-limit'; port: string; limit: PortLimit; frames: number };

export interface DaemonControl {
  readonly hostId: string;
  facts(): DaemonFacts;
  /** Replace the set of fast-path links (backbone links are the daemon's own business). */
  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void;
  /** Replace the set of controller rules. Rules that fail validation are rejected as a whole with a RuleError. */
  applyRules(version: number, rules: readonly RuleSpec[]): void;
  /** The deployment's host ids (the controller's registry): links from or to any other host are refused, and closed if up. */
  setDeploymentHosts?(hostIds: readonly string[]): void;
  /** Counts since the previous call (the local traffic matrix of one update period). */
  takeTrafficSnapshot(): TrafficSnapshot;
  onEvent(handler: (event: DaemonEvent) => void): () => void;
}
