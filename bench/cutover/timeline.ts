/**
 * One QEMU move on one time line (`bench/cutover --timeline`): every moment
 * the move leaves behind, in wall-clock order, as ms after the source
 * QEMU's STOP — what shows which step holds the ping gap open beyond the
 * guest's own downtime (STOP → RESUME).
 *
 *   source daemon   STOP, pre-switchover, migrate-continue, completed, last
 *                   byte on the channel (QEMU_SENT_LOG); the held frames
 *                   onto the link at the commit (SOURCE_RELEASED_LOG)
 *   destination     the stream loaded (RARP or `completed`, QEMU_READY_LOG's
 *                   readyAtMs; its RAM verified after it: the controller's
 *                   `ready` row, qemu-ram-verify.ts); commit heard,
 *                   held frames to the port, cont sent, RESUME
 *                   (QEMU_RESUMED_LOG); first frame out of the guest
 *                   (QEMU_FIRST_FRAME_LOG)
 *   controller      its step rows (ready, commit, acknowledged, commit-sent,
 *                   released, resumed) and the spans (commit durable, rules
 *                   pushed, each daemon's ack)
 *   probes          the last ping reply before the STOP, the first after
 *                   the RESUME (and the ping sent earliest among those answered
 *                   late: a held one), the echo stream's longest silence
 *
 * All moments are wall clocks of one machine (the daemons', the controller's,
 * QEMU's event timestamps, ping's -D): comparable to a fraction of a ms.
 */
import type { MigrationView } from '../../src/controller/api-model.ts';
import type { PingFigures, StreamFigures } from './probes.ts';

export interface TimelineSources {
  /** `logged(host, msg, field)`: a daemon's log field (netns-overlay). */
  logged(host: string, msg: string, field: string): number | undefined;
  steps: ReadonlyArray<{ step: string; state: string; atMs: number }>;
  migration: MigrationView;
  ping: PingFigures;
  stream: StreamFigures;
  from: string;
  to: string;
  /** The daemons' log lines of the QEMU move (their messages). */
  logs: { sent: string; released: string; ready: string; resumed: string; firstFrame: string };
}

export interface Moment { atMs: number; who: string; what: string }

/** The move's moments, sorted; undefined moments left out. */
export function timelineMoments(s: TimelineSources): Moment[] {
  const out: Moment[] = [];
  const add = (atMs: number | null | undefined, who: string, what: string): void => {
    if (atMs !== undefined && atMs !== null && Number.isFinite(atMs)) out.push({ atMs, who, what });
  };
  const src = (msg: string, field: string): number | undefined => s.logged(s.from, msg, field);
  const dst = (msg: string, field: string): number | undefined => s.logged(s.to, msg, field);
  add(src(s.logs.sent, 'stoppedAtMs'), 'source QEMU', 'STOP (the guest stops)');
  add(src(s.logs.sent, 'preSwitchoverAtMs'), 'source QEMU', 'pre-switchover');
  add(src(s.logs.sent, 'continuedAtMs'), 'source', 'migrate-continue sent');
  add(src(s.logs.sent, 'completedAtMs'), 'source QEMU', 'completed');
  add(src(s.logs.sent, 'flushedAtMs'), 'source', 'last byte of the stream on the channel');
  add(dst(s.logs.ready, 'readyAtMs'), 'destination', 'the incoming QEMU loaded the stream (its RAM verified next)');
  for (const r of s.steps) {
    if (['ready', 'commit', 'acknowledged', 'commit-sent', 'released', 'resumed'].includes(r.step)) add(r.atMs, 'controller', `${r.step} ${r.state}`);
  }
  const sp = s.migration.cutover?.spans;
  const pausedAt = s.migration.cutover?.pausedAt;
  if (sp != null && pausedAt != null && sp.pausedHeard !== null) {
    const origin = pausedAt - sp.pausedHeard;
    add(origin, 'source', 'paused (port held)');
    add(pausedAt, 'controller', 'paused heard');
    if (sp.committed !== null) add(origin + sp.committed, 'controller', 'commit point durable');
    if (sp.pushed !== null) add(origin + sp.pushed, 'controller', 'rules pushed');
    for (const [host, at] of Object.entries(sp.acks)) add(origin + at, 'controller', `rules acked by ${host}`);
  }
  const reclaimed = src(s.logs.released, 'reclaimed');
  add(src(s.logs.released, 'flushedAtMs'), 'source', `held frames onto the link to the destination${reclaimed !== undefined && reclaimed > 0 ? ` (${reclaimed} of them reclaimed: delivered to the stopped QEMU before the hold)` : ''}`);
  add(dst(s.logs.resumed, 'commitAtMs'), 'destination', 'migrate-commit heard');
  add(dst(s.logs.resumed, 'heldReleasedAtMs'), 'destination', 'held frames to the port (queued in QEMU)');
  add(dst(s.logs.resumed, 'contSentAtMs'), 'destination', 'cont sent');
  const stop = src(s.logs.sent, 'stoppedAtMs');
  const resumed = dst(s.logs.resumed, 'resumedAtMs');
  add(resumed, 'destination QEMU', 'RESUME (the guest runs)');
  add(dst(s.logs.firstFrame, 'firstFrameAtMs'), 'destination', 'first frame out of the guest');
  add(dst(s.logs.firstFrame, 'firstEchoReplyAtMs'), 'destination', 'first ping answer out of the guest');
  if (stop !== undefined) {
    const before = s.ping.replies.filter((r) => r.atMs <= stop);
    const last = before[before.length - 1];
    if (last !== undefined) add(last.atMs, 'ping', `last reply before the STOP (seq ${last.seq}, rtt ${last.rttMs} ms)`);
  }
  if (resumed !== undefined) {
    const first = s.ping.replies.find((r) => r.atMs >= resumed);
    if (first !== undefined) add(first.atMs, 'ping', `first reply after the RESUME (seq ${first.seq}, rtt ${first.rttMs} ms: sent at +${stop === undefined ? '?' : (first.atMs - first.rttMs - stop).toFixed(1)})`);
  }
  if (s.stream.gap !== undefined && s.stream.gap.ms > 0) {
    add(s.stream.gap.fromMs, 'stream', `echo silent from here (${s.stream.gap.ms} ms)`);
    add(s.stream.gap.toMs, 'stream', 'echo flows again');
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** The time line as printed lines: ms after the STOP, who, what. */
export function timelineReport(title: string, s: TimelineSources): string[] {
  const moments = timelineMoments(s);
  const stop = s.logged(s.from, s.logs.sent, 'stoppedAtMs') ?? moments[0]?.atMs ?? 0;
  const resumed = s.logged(s.to, s.logs.resumed, 'resumedAtMs');
  const out = [`time line of ${title} (ms after the source QEMU's STOP; one machine's wall clock):`];
  for (const m of moments) out.push(`${(m.atMs - stop).toFixed(1).padStart(9)}  ${m.who.padEnd(17)} ${m.what}`);
  if (resumed !== undefined) {
    const down = resumed - stop;
    out.push(`guest downtime ${down.toFixed(1)} ms; ping's longest gap ${s.ping.maxGapMs.toFixed(1)} ms (${(s.ping.maxGapMs - down).toFixed(1)} over)`);
  }
  return out;
}
