import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DaemonFacts } from '../control/daemon-control.ts';
import type { HubState } from './api-views.ts';
import type { BackboneVerdict } from './hub-status.ts';

const HUB_STATES: readonly HubState[] = ['active', 'standby', 'lost', 'down'];

/**
 * The controller's metrics, registered on the prom-client Registry the
 * process passes in (the operator API serves it at /metrics). Per-link
 * counters are the daemons' own cumulative counts, mirrored as gauges each
 * time a daemon reports its facts.
 */
export class ControllerMetrics {
  readonly sessions: Gauge;
  readonly sessionsOpened: Counter<'auth'>;
  readonly reconnects: Counter;
  readonly authFailures: Counter<'reason'>;
  readonly malformedMessages: Counter<'reason'>;
  readonly pendingDropped: Counter<'reason'>;
  readonly messages: Counter<'type'>;
  readonly reconcileSeconds: Histogram;
  /** How late the event loop ran a timer (loop-lag.ts): the controller's busy spells. */
  readonly eventLoopLag: Histogram;
  readonly pushes: Counter<'kind'>;
  readonly pushedBytes: Counter<'type'>;
  readonly nacks: Counter<'kind'>;
  readonly linkBytes: Gauge<'host' | 'peer' | 'kind' | 'direction'>;
  readonly linkFrames: Gauge<'host' | 'peer' | 'kind' | 'direction'>;
  readonly linkDecodeErrors: Gauge<'host' | 'peer' | 'kind'>;
  readonly linkReconnects: Gauge<'host' | 'peer' | 'kind'>;
  readonly errors: Counter<'where'>;
  readonly hubState: Gauge<'hub' | 'state'>;
  readonly spokeHubChanges: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.sessions = new Gauge({ name: 'vnet_control_sessions', help: 'Daemons connected to the control channel now', registers });
    this.sessionsOpened = new Counter({ name: 'vnet_control_sessions_opened_total', help: 'Authenticated control sessions opened, by how the daemon proved its identity', labelNames: ['auth'], registers });
    this.reconnects = new Counter({ name: 'vnet_control_reconnects_total', help: 'Control sessions opened by a host that had a session before (since this controller started)', registers });
    this.authFailures = new Counter({ name: 'vnet_control_auth_failures_total', help: 'Daemons refused at hello, by reason', labelNames: ['reason'], registers });
    this.malformedMessages = new Counter({ name: 'vnet_control_malformed_messages_total', help: 'Control messages refused as malformed, oversize or out of place, by reason', labelNames: ['reason'], registers });
    this.pendingDropped = new Counter({ name: 'vnet_control_pending_dropped_total', help: 'Control connections dropped before their welcome (deadline passed, or evicted by a newcomer when too many were pending), by reason', labelNames: ['reason'], registers });
    this.messages = new Counter({ name: 'vnet_control_messages_total', help: 'Valid control messages received, by type', labelNames: ['type'], registers });
    this.reconcileSeconds = new Histogram({
      name: 'vnet_reconcile_duration_seconds', help: 'Time of one reconcile pass (desired state computed, diffed and pushed)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers,
    });
    this.eventLoopLag = new Histogram({
      name: 'vnet_controller_event_loop_lag_seconds', help: 'How much later than asked the controller\'s event loop ran a 100 ms timer: its busy spells, which everything on the loop waits behind',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    });
    this.pushes = new Counter({ name: 'vnet_control_pushes_total', help: 'Desired-state changes pushed to daemons, by kind', labelNames: ['kind'], registers });
    this.pushedBytes = new Counter({ name: 'vnet_control_pushed_bytes_total', help: 'Bytes of desired state sent to daemons (set-links, set-rules, patch-rules), by message type', labelNames: ['type'], registers });
    this.nacks = new Counter({ name: 'vnet_control_nacks_total', help: 'Changes a daemon refused to apply, by kind', labelNames: ['kind'], registers });
    const linkLabels = ['host', 'peer', 'kind', 'direction'] as const;
    this.linkBytes = new Gauge({ name: 'vnet_link_bytes', help: 'Bytes carried by a link, as its daemon last reported (cumulative)', labelNames: linkLabels, registers });
    this.linkFrames = new Gauge({ name: 'vnet_link_frames', help: 'Frames carried by a link, as its daemon last reported (cumulative)', labelNames: linkLabels, registers });
    this.linkDecodeErrors = new Gauge({ name: 'vnet_link_decode_errors', help: 'Undecodable messages on a link, as its daemon last reported', labelNames: ['host', 'peer', 'kind'], registers });
    this.errors = new Counter({ name: 'vnet_controller_errors_total', help: 'Unexpected errors (bugs) of the controller, by where they happened; the controller kept running', labelNames: ['where'], registers });
    this.hubState = new Gauge({ name: 'vnet_hub_state', help: 'A hub\'s state as the spokes see it: 1 for its state now (active, standby, lost, down), 0 for the others', labelNames: ['hub', 'state'], registers });
    this.spokeHubChanges = new Counter({ name: 'vnet_spoke_hub_changes_total', help: 'Spokes whose backbone link came up to another hub than before (failovers)', registers });
    this.linkReconnects = new Gauge({ name: 'vnet_link_reconnects', help: 'Reconnects of a link, as its daemon last reported', labelNames: ['host', 'peer', 'kind'], registers });
  }

  /** The hub watch's new verdict: every hub's state, and the spokes that moved to another hub since `before`. */
  recordHubs(before: BackboneVerdict, after: BackboneVerdict): void {
    for (const [hub, state] of after.hubs) {
      for (const s of HUB_STATES) this.hubState.set({ hub, state: s }, s === state ? 1 : 0);
    }
    for (const [spoke, hub] of after.hubOf) {
      const was = before.lastHubOf.get(spoke);
      if (hub !== null && before.hubOf.get(spoke) !== hub && was !== undefined && was !== hub) this.spokeHubChanges.inc();
    }
  }

  recordFacts(facts: DaemonFacts): void {
    for (const l of facts.links) {
      const base = { host: facts.hostId, peer: l.peer, kind: l.kind };
      this.linkBytes.set({ ...base, direction: 'tx' }, l.txBytes);
      this.linkBytes.set({ ...base, direction: 'rx' }, l.rxBytes);
      this.linkFrames.set({ ...base, direction: 'tx' }, l.txFrames);
      this.linkFrames.set({ ...base, direction: 'rx' }, l.rxFrames);
      this.linkDecodeErrors.set(base, l.decodeErrors);
      this.linkReconnects.set(base, l.reconnects);
    }
  }
}
