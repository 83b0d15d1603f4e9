import type { Clock, TimerHandle } from '../common/clock.ts';
import { eventToWire, factsToWire, snapshotToWire, type DaemonMessage } from '../control/control-protocol.ts';
import { withFeatures, type ControlFeature } from '../control/control-features.ts';
import type { DaemonControl, DaemonEvent } from '../control/daemon-control.ts';
import type { ImageReport } from '../control/image-control.ts';
import type { MigrationReport } from '../control/migration-control.ts';
import type { AgentState, AgentStats } from './controller-agent-init.ts';
import { MigrationReportQueue } from './migration-report-queue.ts';

/** What the daemon's reports did, in the agent's stats. */
export type ReportStats = Pick<AgentStats, 'trafficReports' | 'migrationReports' | 'migrationReportsDropped' | 'imageReports'>;

/** The session the reports go out on (the controller agent's). */
export interface ReportChannel {
  state(): AgentState;
  /** The session's features: what the reports carry beyond the core fields. */
  features(): ReadonlySet<ControlFeature>;
  /** `sent`: handed to the open channel (in parts if over the limit); `closed`: no open channel; `too-large`: over the limit even in parts (logged by the channel), never sendable. */
  send(message: DaemonMessage): SendOutcome;
}

export type SendOutcome = 'sent' | 'closed' | 'too-large';

/**
 * What the daemon reports to the controller on its control channel
 * (controller-agent.ts), and when:
 *
 *   every update period    → traffic {snapshot} and facts
 *   daemon events          → event, facts
 *   every migration report → migration (queued while the channel is down,
 *                            sent in order once welcomed again; bounded:
 *                            migration-report-queue.ts)
 *   every image progress   → image-progress (dropped while the channel is
 *                            down: the holds that follow the next welcome
 *                            re-report where each version stands)
 *
 * Facts, events and migration reports carry a feature's fields only to a
 * controller that listed it (control-features.ts).
 */
export class DaemonReports {
  readonly #daemon: DaemonControl;
  readonly #clock: Clock;
  readonly #stats: ReportStats;
  readonly #channel: ReportChannel;
  /** Migration reports waiting for the channel, in order. */
  readonly #queued: MigrationReportQueue;
  #report: TimerHandle | undefined;
  #seq = 0;

  constructor(daemon: DaemonControl, clock: Clock, stats: ReportStats, channel: ReportChannel, maxQueuedReports: number) {
    this.#daemon = daemon;
    this.#clock = clock;
    this.#stats = stats;
    this.#channel = channel;
    this.#queued = new MigrationReportQueue(maxQueuedReports);
  }

  /** The session was welcomed: report every `periodMs`, and send the migration reports queued meanwhile. */
  welcomed(periodMs: number): void {
    this.#start(periodMs);
    this.#flush();
  }

  /** The channel closed (or the agent did): no more periodic reports until the next welcome. */
  stop(): void {
    this.#report?.cancel();
    this.#report = undefined;
  }

  /** A migration report: sent now when the channel is up, else queued (bounded) for the next welcome. */
  migration(report: MigrationReport): void {
    if (this.#channel.state() === 'connected' && this.#queued.length === 0) {
      const sent = this.#sendMigration(report);
      if (sent === 'sent') this.#stats.migrationReports++;
      // A report no channel can carry is dropped, not queued: at the head of the queue it would hold back every later one.
      if (sent === 'too-large') this.#stats.migrationReportsDropped++;
      if (sent !== 'closed') return;
    }
    if (this.#channel.state() === 'closed') return;
    if (this.#queued.push(report)) this.#stats.migrationReportsDropped++;
  }

  image(report: ImageReport): void {
    if (this.#channel.state() === 'connected' && this.#channel.send(report) === 'sent') this.#stats.imageReports++;
  }

  event(event: DaemonEvent): void {
    if (this.#channel.state() !== 'connected') return;
    this.#channel.send({ type: 'event', event: eventToWire(event, this.#channel.features()) });
    this.#channel.send({ type: 'facts', facts: factsToWire(this.#daemon.facts(), this.#channel.features()) });
  }

  /** A migration report as this session's features allow (its `timing` only to a controller that listed it). */
  #sendMigration(report: MigrationReport): SendOutcome {
    return this.#channel.send(withFeatures(report, this.#channel.features(), 'migration-timing', 'timing'));
  }

  #flush(): void {
    let dropped = 0;
    const taken = this.#queued.drain((r) => {
      if (this.#channel.state() !== 'connected') return false;
      const sent = this.#sendMigration(r);
      if (sent === 'too-large') dropped++;
      return sent !== 'closed';
    });
    this.#stats.migrationReports += taken - dropped;
    this.#stats.migrationReportsDropped += dropped;
  }

  #start(periodMs: number): void {
    this.stop();
    // Counts since the last report taken (possibly before a disconnect) go into the first one.
    this.#report = this.#clock.setInterval(() => this.#reportNow(), periodMs);
  }

  #reportNow(): void {
    if (this.#channel.state() !== 'connected') return;
    const snapshot = this.#daemon.takeTrafficSnapshot();
    this.#channel.send({ type: 'traffic', seq: ++this.#seq, snapshot: snapshotToWire(snapshot) });
    this.#channel.send({ type: 'facts', facts: factsToWire(this.#daemon.facts(), this.#channel.features()) });
    this.#stats.trafficReports++;
  }
}
