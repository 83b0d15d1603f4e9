import type { DaemonRole, LinkKind, ListenAddress, RuleSpec } from '../control/daemon-control.ts';
import type { TopologyClass } from '../topology/class-fit.ts';

/**
 * What the operator API's reads return (api-model.ts's `ControllerQueries`,
 * whose conventions bind these too: plain JSON, `null` for absent, wall-clock
 * milliseconds, VMs by MAC, links by two host ids with a < b): hosts and
 * hubs, VMs, links, rules, the traffic matrix, the inferred topology,
 * migrations and their cutover, the placement proposal, decisions.
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
