import type { ControlFeature } from '../control/control-features.ts';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/logger.ts';
import type { DaemonControl } from '../control/daemon-control.ts';
import type { MigrationControl } from '../control/migration-control.ts';
import type { ImageControl } from '../control/image-control.ts';
import type { PartLimits } from '../control/part-assembler.ts';
import type { BackoffPolicy } from './backoff.ts';
import type { ChangeStats } from './controller-changes.ts';

/** What the controller agent (controller-agent.ts) is built from and with, and what it counts. */

export type AgentState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

/** The code of the `failed` report a daemon without a migration agent answers migration commands with. */
export const NO_MIGRATION_AGENT_CODE = 'VNET_ERR_NO_MIGRATION_AGENT';

export interface ControllerAgentComponents {
  daemon: DaemonControl;
  /** The host's migration agent; without one, migration commands are answered `failed`. */
  migrations?: MigrationControl | undefined;
  /** The host's image propagator (its site's chunk store); without one the hello announces no store and holds are ignored. */
  images?: ImageControl | undefined;
  logger: Logger;
  clock: Clock;
  random?: () => number;
}

export interface ControllerAgentInit {
  /** e.g. wss://controller.example:7400/control */
  url?: string | undefined;
  /** The control channels of a replicated controller's replicas, tried in turn for the leader (instead of `url`). */
  urls?: readonly string[] | undefined;
  tls: {
    /** The deployment CA: the controller's certificate must chain to it. */
    ca: string | Buffer;
    /** This host's certificate and key (mutual TLS); without them, a join token or credential is needed. */
    cert?: string | Buffer | undefined;
    key?: string | Buffer | undefined;
    /** Name to check the controller's certificate against, if not the URL's host. */
    servername?: string | undefined;
  };
  /** The local address to dial from (a host with several; default: the system's choice). */
  localAddress?: string | undefined;
  joinToken?: string | undefined;
  /** A host credential issued at an earlier join. */
  credential?: string | undefined;
  /** Called when the controller issues a credential (persist it to rejoin after a restart). */
  onCredential?: ((credential: string) => void) | undefined;
  backoff?: BackoffPolicy | undefined;
  maxMessageBytes?: number | undefined;
  /** Give up on a connection attempt that has no welcome after this long. */
  welcomeTimeoutMs?: number | undefined;
  /** Ping the controller this often; a channel with no pong or message within an interval of a ping is cut and redialled (default 5000). */
  keepaliveMs?: number | undefined;
  /** Migration reports kept while the channel is down (default 1024). */
  maxQueuedReports?: number | undefined;
  /** Bounds on a rule or link set received in parts (default DEFAULT_PART_LIMITS). */
  parts?: PartLimits | undefined;
  /** The features this daemon lists in its hello (default: every one this build speaks, CONTROL_FEATURES); fewer act as an older daemon (benches, tests). */
  features?: readonly ControlFeature[] | undefined;
  /** Called once when the controller refuses the hello for good (fatal error before the welcome); the agent has stopped. */
  onRefused?: ((refusal: { code: string; message: string }) => void) | undefined;
}

export interface AgentStats extends ChangeStats {
  connects: number;
  disconnects: number;
  malformed: number;
  errorsReceived: number;
  trafficReports: number;
  migrationCommands: number;
  migrationReports: number;
  /** Migration reports dropped: the queue was full while the channel was down, or a report was over the message limit even in parts. */
  migrationReportsDropped: number;
  imageHolds: number;
  imageReports: number;
  lastError: { code: string; message: string } | undefined;
}
