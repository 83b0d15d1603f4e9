import type { DaemonRole, LinkKind, ListenAddress, RuleSpec } from '../control/daemon-control.ts';
import type { TopologyClass } from '../topology/classify.ts';

/**
 * The controller as the operator sees it: the views the HTTP/WebSocket API
 * returns, the queries and commands it calls, and the event source it streams.
 *
 * Two implementations: the store-backed one (SQLite, `src/controller`) and
 * `MemoryControllerModel` (`memory-controller-model.ts`) for tests and the web
 * page's browser test. The API server only ever talks to these interfaces.
 *
 * Conventions, binding for every implementation:
 * - Views are plain JSON data (no undefined, no Map, no class instances): an
 *   absent value is `null`. Times are wall-clock milliseconds (`Date.now()`).
 * - Host ids are the deployment's names; a VM is named by its MAC as
 *   "02:00:00:00:00:01" (lower case, colons); a link by its two host ids,
 *   normalised so that `a < b` (string order). Lookups accept either order.
 * - Queries are synchronous (the store reads SQLite synchronously) and never
 *   throw for "absent": `get…` returns undefined.
 * - Commands are async, validate their input against the current state, audit
 *   the action (who, what, why) and emit the matching events. They throw
 *   errors with stable codes that the API maps to statuses:
 *   VNET_ERR_NOT_FOUND / VNET_ERR_UNKNOWN_HOST → 404, VNET_ERR_CONFLICT → 409,
 *   VNET_ERR_INVALID_ARGUMENT → 400, VNET_ERR_NOT_SUPPORTED → 501.
 */

export type HostState = 'up' | 'down';

/**
 * A hub's state as the spokes see it (hub-status.ts): `active` (spokes on
 * it), `standby` (none, but reachable), `lost` (spokes gave up on it while
 * its control channel may still look up), `down` (its daemon is not connected).
 */
export type HubState = 'active' | 'standby' | 'lost' | 'down';

export interface HostView {
  id: string;
  site: string | null;
  /** Where the daemon listens for tunnels (as it reported or as configured). */
  addresses: ListenAddress[];
  role: DaemonRole;
  state: HostState;
  /** Last message from the daemon (wall-clock ms), null if never seen. */
  lastSeen: number | null;
  /** A spoke: the hub its backbone link is up to now (null: none, or not connected). A hub: null. */
  hub: string | null;
  /** A hub: its state as the spokes see it. A spoke: null. */
  hubState: HubState | null;
}

export type VmState = 'running' | 'migrating' | 'stopped' | 'unknown';

export interface VmView {
  mac: string;
  ip: string | null;
  /** The host the VM runs on now; null while unplaced. */
  host: string | null;
  state: VmState;
  name: string | null;
}

/** Backbone links come from the deployment; fast-path links from adaptation or an operator. */
export type LinkRequester = 'config' | 'adaptation' | 'operator';
/** `pending`: desired but not yet reported by a daemon. */
export type LinkState = 'up' | 'connecting' | 'down' | 'pending';

export interface LinkView {
  /** Host ids with a < b. */
  a: string;
  b: string;
  kind: LinkKind;
  state: LinkState;
  requestedBy: LinkRequester;
  /** The operator or component that asked for it (e.g. "operator:admin"), null for config. */
  actor: string | null;
  reason: string;
  /** Totals in both directions since the link was created. */
  bytes: number;
  frames: number;
  /** Rates over the last update period. */
  bytesPerSec: number;
  framesPerSec: number;
}

export interface RuleView extends RuleSpec {
  /** Why the controller installed it (fast path, migration cutover…), null if not recorded. */
  reason: string | null;
}

export interface HostRulesView {
  host: string;
  /** The version of the desired rule set, and the one the daemon last acknowledged. */
  version: number;
  appliedVersion: number | null;
  rules: RuleView[];
}

export interface MatrixVm {
  mac: string;
  ip: string | null;
  host: string | null;
  name: string | null;
}

/** One directed entry of the global traffic matrix (src → dst VM). */
export interface MatrixEdge {
  src: string;
  dst: string;
  /** Smoothed rate, and the raw totals of the last period. */
  bytesPerSec: number;
  framesPerSec: number;
}

export interface MatrixView {
  /** When the matrix was last updated (wall-clock ms), null before the first update. */
  at: number | null;
  periodMs: number;
  vms: MatrixVm[];
  /** Sparse: only pairs that exchanged traffic. */
  edges: MatrixEdge[];
}

/** The application topology classes VTTIF-style inference reports (`src/topology/classify.ts`). */
export type { TopologyClass };

/** An undirected edge of the inferred topology, between two VMs. */
export interface TopologyEdge {
  a: string;
  b: string;
  /** Normalised weight 0..1 (1 = the heaviest edge), smoothed, as of the topology's `weightsAt`. */
  weight: number;
  /** Smoothed rate of the pair, both directions, as of `weightsAt`. */
  bytesPerSec: number;
}

export interface TopologyView {
  class: TopologyClass;
  /** The centre VM for star and tree, null otherwise. */
  centre: string | null;
  /** 0..1 */
  confidence: number;
  /** The announced edge set (as of `detectedAt`), each with its current smoothed weight and rate. */
  edges: TopologyEdge[];
  /** When the current topology was first detected (announced), null if none yet. */
  detectedAt: number | null;
  /** When the edges' weights and rates were last updated (every update period), null if never. */
  weightsAt: number | null;
}

export type MigrationPhase = 'prepare' | 'disk' | 'memory' | 'stop-and-copy' | 'cutover' | 'resume' | 'done';
export type MigrationState = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface MigrationView {
  id: string;
  vm: string;
  from: string;
  to: string;
  phase: MigrationPhase;
  /** 0..1 */
  progress: number;
  bytesSent: number;
  /** Estimated total bytes, null if unknown. */
  bytesTotal: number | null;
  /** Estimated time to completion in ms, null if unknown. */
  etaMs: number | null;
  state: MigrationState;
  startedAt: number;
  finishedAt: number | null;
  /** Failure reason when state is failed (or cancelled). */
  error: string | null;
  /**
   * The coordinator's step: prepare, transfer, paused, commit, cutover,
   * cleanup, done; aborting, aborted (migration-run.ts).
   */
  step: string;
  /** The stop rule of the memory phase: smart-stop, xen, qemu, time-bound. */
  rule: string | null;
  /** Who asked for it: operator:<who>, auto-migrate. */
  requestedBy: string | null;
  /** The engine's own phase (starting, disk, memory, paused, verifying…), iteration, pages left and dirty rate (pages/s), as last reported. */
  enginePhase: string | null;
  iteration: number | null;
  pagesLeft: number | null;
  dirtyRate: number | null;
  /** Around the cutover, null before the pause. */
  cutover: MigrationCutoverView | null;
}

/** The cutover of one migration: its time and what happened to the VM's frames (both sides summed). */
export interface MigrationCutoverView {
  /** From the source's pause to every connected daemon acknowledging the rules that point at the destination, null until then. */
  timeMs: number | null;
  pausedAt: number | null;
  acknowledgedAt: number | null;
  held: number;
  flushed: number;
  relayed: number;
  lost: number;
  announced: number;
  /** Where the cutover's time went: each step's moment, ms after the source paused the guest (migration-spans.ts); null before the pause. */
  spans: MigrationSpansView | null;
}

/** A cutover's steps as offsets from the source's pause, ms (null: not reached, or not reported). */
export interface MigrationSpansView {
  /** The controller heard the pause. */
  pausedHeard: number | null;
  /** The source handed the final copy (last pages, device state) to the migration channel. */
  finalSent: number | null;
  /** The destination received, applied and verified it. */
  applied: number | null;
  /** The controller heard `ready`. */
  ready: number | null;
  /** The commit point was durably written. */
  committed: number | null;
  /** The rules that point at the destination were handed to every daemon's control channel. */
  pushed: number | null;
  /** Each re-pointed daemon's acknowledgement, as heard. */
  acks: Record<string, number>;
  /** The last acknowledgement (the cutover time). */
  acknowledged: number | null;
  /** The VM ran on the destination. */
  resumed: number | null;
}

export interface StartMigrationOptions {
  /** The stop rule of the memory phase (default smart-stop). */
  rule?: 'smart-stop' | 'xen' | 'qemu' | 'time-bound' | undefined;
  /** For time-bound: the bound on the memory phase, seconds. */
  deadlineS?: number | undefined;
}

export interface PlacementMove {
  vm: string;
  from: string;
  to: string;
  /** Score gain of this move (higher is better). */
  gain: number;
  reason: string;
  /** Under a scheduling policy: the action it belongs to, its cost in score units and the engine's estimate (bytes, seconds). */
  kind?: 'move' | 'swap' | 'group';
  cost?: number;
  bytes?: number;
  seconds?: number;
  /** 'started' once a migration of this VM to `to` is running. */
  state?: 'proposed' | 'started';
}

export interface PlacementView {
  /** When the proposal was computed, null if never. */
  computedAt: number | null;
  /** Score of the current placement and of the proposed one. */
  score: number;
  proposedScore: number;
  /** The gain a move must beat before it is made (Supercloud's T). */
  threshold: number;
  moves: PlacementMove[];
  /** The scheduling policy that computed it (absent: traffic × latency advice), its score unit, what the current score is made of, and why nothing moves. */
  policy?: string;
  unit?: string;
  notes?: string[];
  refused?: string;
  /** With `scheduler.clock`: the time the policy saw (ms since the epoch) and how much faster than the wall clock its time runs. */
  policyTime?: number;
  speedup?: number;
}

export type DecisionKind =
  | 'fast-path-added'
  | 'fast-path-removed'
  | 'topology-changed'
  | 'migration-proposed'
  | 'migration-started'
  | 'rules-pushed'
  | 'no-change';

export interface DecisionView {
  id: number;
  time: number;
  kind: DecisionKind;
  reason: string;
  /** Free-form structured detail (hosts, VMs, rates, thresholds). */
  detail: Record<string, unknown>;
}

/** Payload of each event type. State-carrying events hold the whole new view, so a client can apply them without re-fetching. */
export interface EventPayloads {
  'host-changed': { host: HostView };
  'host-removed': { id: string };
  /** A hub's state changed (lost, down, back as active or standby); `spokes` are on it now. */
  'hub-changed': { hub: string; state: HubState; previous: HubState | null; spokes: string[] };
  /** A spoke's backbone link is up to another hub than before (a failover; previous null: it had none). */
  'spoke-hub-changed': { host: string; hub: string; previous: string | null };
  'vm-changed': { vm: VmView };
  'vm-removed': { mac: string };
  'link-changed': { link: LinkView };
  'link-removed': { a: string; b: string; kind: LinkKind; actor: string | null; reason: string };
  /** Counters and rates of every link, once per update period. */
  'traffic-updated': { at: number; links: LinkRateView[]; topology?: TopologyWeightsView };
  'rules-changed': { host: string; version: number };
  'topology-changed': { topology: TopologyView };
  'migration-changed': { migration: MigrationView };
  'placement-changed': { placement: PlacementView };
  decision: { decision: DecisionView };
  /** Audit record of an operator action done through the API. */
  'operator-action': { actor: string; action: string; detail: Record<string, unknown> };
  /** A daemon refused what a VM did (docs/security.md): a MAC seen away from its home, or a port limit that dropped frames. Rate limited by the daemon. */
  security: { host: string; report: SecurityReport };
}

/** What a daemon reported refusing; `frames`: since its previous report of the same kind. */
export type SecurityReport =
  | { kind: 'mac-conflict'; mac: string; seenAt: string; home: string; by: 'port' | 'controller'; frames: number }
  | { kind: 'port-limit'; port: string; limit: 'spoofed-source' | 'mac-limit' | 'mac-rate' | 'flood-rate'; frames: number };

/** The current weights of the announced topology's edges, once per update period. */
export interface TopologyWeightsView {
  weightsAt: number;
  edges: TopologyEdge[];
}

export interface LinkRateView {
  a: string;
  b: string;
  bytes: number;
  frames: number;
  bytesPerSec: number;
  framesPerSec: number;
}

export type EventType = keyof EventPayloads;

export const EVENT_TYPES: readonly EventType[] = [
  'host-changed',
  'host-removed',
  'hub-changed',
  'spoke-hub-changed',
  'vm-changed',
  'vm-removed',
  'link-changed',
  'link-removed',
  'traffic-updated',
  'rules-changed',
  'topology-changed',
  'migration-changed',
  'placement-changed',
  'decision',
  'operator-action',
  'security',
];

/** One event: `seq` grows by one per event, from 1, for the lifetime of the store. */
export type EventView = {
  [K in EventType]: { seq: number; time: number; type: K; payload: EventPayloads[K] };
}[EventType];

export interface EventQuery {
  /** Only events with seq > since. */
  since?: number;
  /** At most this many (the oldest first); implementations cap it. */
  limit?: number;
  types?: readonly EventType[];
}

export interface EventPage {
  events: EventView[];
  /** The oldest seq still retained (0 if none): a client whose `since` is below oldestSeq - 1 missed events. */
  oldestSeq: number;
  latestSeq: number;
}

export interface ControllerQueries {
  listHosts(): HostView[];
  getHost(id: string): HostView | undefined;
  listVms(): VmView[];
  getVm(mac: string): VmView | undefined;
  listLinks(): LinkView[];
  getLink(a: string, b: string): LinkView | undefined;
  /** undefined when the host is unknown. */
  getRules(host: string): HostRulesView | undefined;
  getMatrix(): MatrixView;
  getTopology(): TopologyView;
  listMigrations(): MigrationView[];
  getMigration(id: string): MigrationView | undefined;
  listEvents(query: EventQuery): EventPage;
  getPlacement(): PlacementView;
  /** The most recent decisions, newest last. */
  listDecisions(query: { limit?: number }): DecisionView[];
}

export interface ControllerCommands {
  /**
   * Ask for a fast-path link between two hosts. Throws VNET_ERR_NOT_FOUND (or
   * VNET_ERR_UNKNOWN_HOST) for an unknown host, VNET_ERR_CONFLICT when a == b
   * or a link between them already exists. Audited as an operator action.
   */
  addFastPathLink(a: string, b: string, reason: string, actor: string): Promise<LinkView>;
  /**
   * Remove a fast-path link. Throws VNET_ERR_NOT_FOUND when there is none,
   * VNET_ERR_CONFLICT when the link between them is a backbone link.
   */
  removeFastPathLink(a: string, b: string, actor: string): Promise<void>;
  /**
   * Start a live migration of a VM (named by MAC or by name) to a host
   * (optional: the API answers 501 where absent). Throws 404-class errors for
   * an unknown VM or host, 409-class ones when the VM already runs there, is
   * migrating, or a host it needs is down.
   */
  startMigration?(vm: string, to: string, actor: string, options?: StartMigrationOptions): Promise<MigrationView>;
  /** Abort a migration before its commit point (409 after it). */
  cancelMigration?(id: string, actor: string): Promise<MigrationView>;
}

export type EventHandler = (event: EventView) => void;

export interface EventSubscribeOptions {
  /** Replay retained events with seq > since (synchronously, in order) before live ones. */
  since?: number;
}

export interface ControllerEventSource {
  /** Handlers are called synchronously, in seq order, and must not throw. Returns the unsubscribe function. */
  subscribe(handler: EventHandler, options?: EventSubscribeOptions): () => void;
  latestSeq(): number;
}

/** Everything the API server needs from the controller. */
export type ControllerModel = ControllerQueries & ControllerCommands & ControllerEventSource;

/** Normalise a host pair so that a < b. */
export function linkKey(a: string, b: string): { a: string; b: string } {
  return a < b ? { a, b } : { a: b, b: a };
}
