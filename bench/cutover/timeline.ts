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
import type { MigrationView } from '../../src/controller/api-views.ts';
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

/**
 * How the ping's gap at a QEMU guest's cutover divides up, in ms, every part
 * from the same wall clock: what ping's sampling, QEMU, the guest and the
 * network each take of it. The guest's own downtime is the STOP until the
 * guest's first answer out of its NIC on the destination — QEMU's figure
 * (STOP → RESUME) plus the time the guest, once run, takes to answer a ping
 * that was already waiting in its QEMU (`waited`): no network is in that
 * span. The answer's trip from the NIC to the pinger is the network's part.
 * With `bench/cutover/qemu-pingpong.ts --stop-cont MS` (the same guest
 * stopped and run again in one warm QEMU, no migration) the guest answers
 * 1–2 ms after its RESUME; after a migration, on a fresh QEMU, 20–45 ms.
 */
export interface GapAccount {
  /** ping's sampling: its last reply before the STOP came this long before it. */
  samplingMs: number;
  /** QEMU's own figure: the source's STOP to the destination's RESUME. */
  qemuDowntimeMs: number;
  /** The RESUME to the guest's first ping answer out of its NIC on the destination. */
  wakeMs: number;
  /** A ping waited in the destination QEMU when the guest ran: the held frames reached its port before the RESUME, and the first reply's ping was sent before it. */
  waited: boolean;
  /** The guest's own downtime: STOP → its first ping answer out of its NIC (qemuDowntimeMs + wakeMs). */
  guestOwnMs: number;
  /** That answer's trip from the guest's NIC to the pinger: the network's part (the daemon's moment is `Date.now()`, whole ms cut down: up to 1 ms too long). */
  tripMs: number;
  /** The run's median round trip: the path's steady trip there and back. */
  medianRttMs: number;
  /** The ping's gap at the cutover: its last reply before the STOP to its first after the RESUME (= samplingMs + guestOwnMs + tripMs). */
  gapMs: number;
  /** The same gap counted from the STOP (ping's sampling left out) = guestOwnMs + tripMs. */
  fromStopMs: number;
}

/** The gap's account from the move's moments; undefined when one of them is missing. */
export function gapAccount(s: TimelineSources): GapAccount | undefined {
  const stop = s.logged(s.from, s.logs.sent, 'stoppedAtMs');
  const resumed = s.logged(s.to, s.logs.resumed, 'resumedAtMs');
  const handed = s.logged(s.to, s.logs.resumed, 'heldReleasedAtMs');
  const answered = s.logged(s.to, s.logs.firstFrame, 'firstEchoReplyAtMs');
  if (stop === undefined || resumed === undefined || answered === undefined) return undefined;
  const last = s.ping.replies.filter((r) => r.atMs <= stop).at(-1);
  const first = s.ping.replies.find((r) => r.atMs >= answered);
  if (last === undefined || first === undefined) return undefined;
  const rtts = s.ping.replies.map((r) => r.rttMs).sort((a, b) => a - b);
  return {
    samplingMs: stop - last.atMs,
    qemuDowntimeMs: resumed - stop,
    wakeMs: answered - resumed,
    waited: handed !== undefined && handed <= resumed && first.atMs - first.rttMs < resumed,
    guestOwnMs: answered - stop,
    tripMs: first.atMs - answered,
    medianRttMs: rtts[Math.floor(rtts.length / 2)] ?? Number.NaN,
    gapMs: first.atMs - last.atMs,
    fromStopMs: first.atMs - stop,
  };
}

/** The account as printed lines. */
export function gapAccountLines(a: GapAccount): string[] {
  const f = (n: number): string => n.toFixed(1);
  return [
    `the ping's gap at the cutover ${f(a.gapMs)} ms = ${f(a.samplingMs)} ping's sampling (its last reply before the STOP) + ${f(a.qemuDowntimeMs)} QEMU's downtime (STOP → RESUME) + ${f(a.wakeMs)} the guest waking (RESUME → its first answer out of its NIC${a.waited ? ', a ping waiting in its QEMU since before the RESUME' : '; NO ping was waiting for it at the RESUME: the network\'s too'}) + ${f(a.tripMs)} that answer's trip to the pinger (the network; the run's median round trip ${a.medianRttMs.toFixed(3)})`,
    `the guest's own downtime (STOP → its first answer out of its NIC) ${f(a.guestOwnMs)} ms; the ping's gap from the STOP ${f(a.fromStopMs)} ms: ${f(a.fromStopMs - a.guestOwnMs)} over it, that answer's trip`,
  ];
}

/** The time line as printed lines: ms after the STOP, who, what. */
export function timelineReport(title: string, s: TimelineSources): string[] {
  const moments = timelineMoments(s);
  const stop = s.logged(s.from, s.logs.sent, 'stoppedAtMs') ?? moments[0]?.atMs ?? 0;
  const out = [`time line of ${title} (ms after the source QEMU's STOP; one machine's wall clock):`];
  for (const m of moments) out.push(`${(m.atMs - stop).toFixed(1).padStart(9)}  ${m.who.padEnd(17)} ${m.what}`);
  const account = gapAccount(s);
  if (account !== undefined) out.push(...gapAccountLines(account));
  return out;
}
