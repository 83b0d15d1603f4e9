import type { Mac } from './mac.ts';

/**
 * What a running daemon offers to whoever steers it: the local admin
 * interface now, the controller agent (`src/dataplane/controller-agent.ts`)
 * later. The daemon reports facts and applies desired state; it never decides
 * desired state itself. The controller agent pushes *whole* desired sets (links,
 * rules) with a version, so applying the same push twice is a no-op.
 */

export type LinkKind = 'backbone' | 'fast-path';
export type TransportKind = 'tcp' | 'tls' | 'memory';
export type DaemonRole = 'hub' | 'spoke';

export interface PortFacts {
  name: string;
  kind: 'tap' | 'memory';
  mac: string; // "02:00:00:00:00:01"
  ip: string | undefined; // configured or learned from ARP
  mtu: number;
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  txDropped: number;
}

export interface LinkFacts {
  peer: string;
  kind: LinkKind;
  state: 'up' | 'connecting' | 'down';
  /** Who opened it: we dialled, or the peer did. */
  direction: 'outbound' | 'inbound';
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  txDropped: number;
  decodeErrors: number;
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
}

/** A fast-path link the controller wants: dial `address` unless the peer dials us (lower host id dials). */
export interface DesiredLink {
  peer: string;
  address: ListenAddress;
  reason: string;
  /** Whether this side dials; default: the side with the lower host id. */
  dial?: boolean | undefined;
}

/** A forwarding rule as carried in JSON (config, admin API, control channel). */
export interface RuleSpec {
  id: string;
  priority: number;
  /** "any", a MAC "02:..", or "!02:.." for not-equal. */
  src: string;
  dst: string;
  action: { port: string } | { link: string } | 'flood' | 'drop';
}

export interface TrafficEntry {
  src: Mac;
  dst: Mac;
  frames: number;
  bytes: number;
}

export interface TrafficSnapshot {
  host: string;
  startMs: number; // wall-clock ms (Date.now())
  endMs: number;
  entries: TrafficEntry[];
}

export type DaemonEvent =
  | { type: 'port-added'; port: PortFacts }
  | { type: 'port-removed'; name: string; reason: string }
  | { type: 'link-up'; peer: string; kind: LinkKind }
  | { type: 'link-down'; peer: string; kind: LinkKind; reason: string };

export interface DaemonControl {
  readonly hostId: string;
  facts(): DaemonFacts;
  /** Replace the set of fast-path links (backbone links are the daemon's own business). */
  applyFastPathLinks(version: number, links: readonly DesiredLink[]): void;
  /** Replace the set of controller rules. Rules that fail validation are rejected as a whole with a RuleError. */
  applyRules(version: number, rules: readonly RuleSpec[]): void;
  /** Counts since the previous call (the local traffic matrix of one update period). */
  takeTrafficSnapshot(): TrafficSnapshot;
  onEvent(handler: (event: DaemonEvent) => void): () => void;
}
