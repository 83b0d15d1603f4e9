/**
 * The controller as the operator sees it: the views the HTTP/WebSocket API
 * returns, the queries and commands it calls, and the event source it streams.
 *
 * Two implementations: the store-backed one (SQLite, `src/controller`) and
 * `MemoryControllerModel` (`memory-controller-model.ts`) for tests and the web
 * page's browser test. The API server only ever talks to these interfaces.
 *
 * This file holds the reads (`ControllerQueries`), the writes
 * (`ControllerCommands`) and the whole (`ControllerModel`); the views the
 * reads return are in api-views.ts, the events and their source in
 * api-events.ts.
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
import type { ControllerEventSource, EventPage, EventQuery } from './api-events.ts';
import type { DecisionView, HostRulesView, HostView, LinkView, MatrixView, MigrationView, PlacementView, TopologyView, VmView } from './api-views.ts';

export interface StartMigrationOptions {
  /** The stop rule of the memory phase (default smart-stop). */
  rule?: 'smart-stop' | 'xen' | 'qemu' | 'time-bound' | undefined;
  /** For time-bound: the bound on the memory phase, seconds. */
  deadlineS?: number | undefined;
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

/** Everything the API server needs from the controller. */
export type ControllerModel = ControllerQueries & ControllerCommands & ControllerEventSource;

/** Normalise a host pair so that a < b. */
export function linkKey(a: string, b: string): { a: string; b: string } {
  return a < b ? { a, b } : { a: b, b: a };
}
