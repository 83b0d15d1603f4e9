import type { DaemonFacts, DaemonRole, LinkCounters, LinkKind, ListenAddress, RuleSpec } from '../../control/daemon-control.ts';

/** The rows of the controller's database as the rest of the controller sees them. */

export interface HostRecord {
  id: string;
  site: string | undefined;
  role: DaemonRole;
  addresses: ListenAddress[];
  connected: boolean;
  firstSeenMs: number | undefined;
  lastSeenMs: number | undefined;
  facts: DaemonFacts | undefined;
}

export type VmState = 'running' | 'migrating' | 'stopped' | 'unknown';
export type VmSource = 'deployment' | 'learned' | 'operator';

export interface VmRecord {
  mac: string;
  name: string | undefined;
  ip: string | undefined;
  host: string | undefined;
  state: VmState;
  source: VmSource;
  updatedMs: number;
}

export interface LinkRecord {
  /** Host ids, a < b. */
  a: string;
  b: string;
  kind: LinkKind;
  /** deployment | adaptation | operator:<who> */
  requestedBy: string;
  reason: string;
  createdMs: number;
}

export interface HostRuleRecord extends RuleSpec {
  host: string;
}

export interface DesiredVersions {
  host: string;
  linksVersion: number;
  linksDigest: string;
  rulesVersion: number;
  rulesDigest: string;
  linksAcked: number;
  rulesAcked: number;
}

export interface TrafficSampleRecord {
  host: string;
  startMs: number;
  endMs: number;
  src: string;
  dst: string;
  frames: number;
  bytes: number;
}

export interface TopologyRecord {
  id: number;
  atMs: number;
  kind: string;
  changed: boolean;
  body: unknown;
}

import type { MigrationRun } from '../migration-run.ts';

/** `aborting`: the abort is decided and being carried out; `cancelled`: aborted at an operator's request. */
export type MigrationState = 'pending' | 'running' | 'aborting' | 'done' | 'failed' | 'cancelled';

export interface MigrationRecord {
  id: string;
  vmMac: string;
  fromHost: string;
  toHost: string;
  state: MigrationState;
  requestedBy: string;
  startedMs: number;
  finishedMs: number | undefined;
  error: string | undefined;
  /** The coordinator's record of it (absent for rows written before the coordinator existed). */
  run?: MigrationRun | undefined;
}

export interface MigrationStepRecord {
  id: number;
  migrationId: string;
  step: string;
  state: string;
  atMs: number;
  detail: unknown;
}

export interface AuditRecord {
  id: number;
  atMs: number;
  actor: string;
  action: string;
  target: string;
  detail: unknown;
}

export interface EventRecord {
  id: number;
  atMs: number;
  type: string;
  data: unknown;
}

/** What an API token may do: `read` (GET and the event stream), `operator` (everything). */
export type ApiScope = 'read' | 'operator';
export const API_SCOPES: readonly ApiScope[] = ['read', 'operator'];

export interface ApiTokenRecord {
  id: string;
  hash: string;
  label: string;
  scope: ApiScope;
  createdMs: number;
  revokedMs: number | undefined;
}

export interface JoinTokenRecord {
  id: string;
  hash: string;
  host: string | undefined;
  createdMs: number;
  expiresMs: number | undefined;
  singleUse: boolean;
  usedMs: number | undefined;
  usedBy: string | undefined;
  revokedMs: number | undefined;
}

/** The credential issued to a host at its join (only its hash is kept). */
export interface HostCredentialRecord {
  host: string;
  hash: string;
  createdMs: number;
  lastUsedMs: number | undefined;
}

/** A certificate of a host (found in the controller's TLS directory, or authenticated with), by SHA-256 fingerprint. */
export interface HostCertificateRecord {
  host: string;
  fingerprint: string;
  firstSeenMs: number;
  /** Undefined until the host authenticates with it. */
  lastUsedMs: number | undefined;
  revokedMs: number | undefined;
}

/** The last facts a host reported about one of its links. */
export interface LinkReportRecord extends LinkCounters {
  host: string;
  peer: string;
  kind: LinkKind;
  state: string;
  reconnects: number;
  updatedMs: number;
}
