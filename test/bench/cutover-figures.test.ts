/**
 * The cutover benchmark's figures (bench/cutover): "answers again" is the
 * first reply to a request sent after the pause — not the end of the
 * longest gap anywhere in the move's window, which picked a late ping gap
 * seconds after the cutover (a row of 6,656.7 ms while every move's gap at
 * the cutover was 50–149 ms) — the scheduling figures laid beside a
 * gap come from the kernel's cumulative counters, and a QEMU guest's ping
 * gap divides into ping's sampling, QEMU's downtime, the guest waking and
 * the answer's trip.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answersAgainMs, type PingFigures } from '../../bench/cutover/probes.ts';
import { gapAccount, type TimelineSources } from '../../bench/cutover/timeline.ts';
import { explainGap, parseRunnable, parseSchedstat, shareOf, verdictOf } from '../../bench/cutover/sched-watch.ts';

/** Replies every 10 ms from t=0 to `endMs` with a 1 ms round trip, less those in `gaps` ([from, to) of print time), plus `extra`. */
function pingOf(endMs: number, gaps: ReadonlyArray<[number, number]>, extra: PingFigures['replies'] = []): PingFigures {
  const replies: PingFigures['replies'] = [];
  for (let t = 0, seq = 1; t <= endMs; t += 10, seq++) if (!gaps.some(([a, b]) => t >= a && t < b)) replies.push({ seq, atMs: t, rttMs: 1 });
  replies.push(...extra);
  replies.sort((a, b) => a.atMs - b.atMs);
  return { sent: replies.length, received: replies.length, lost: 0, maxGapMs: 0, replies };
}

test('answers again: the first reply to a request sent after the pause, not a longer late gap seconds later', () => {
  // The cutover: no replies from the pause at 1000 to 1060; a late gap of 150 ms ends at 7650 (a stall of the path, long round trips).
  const ping = pingOf(8000, [[1000, 1060], [7500, 7650]], [{ seq: 9999, atMs: 7650, rttMs: 140 }]);
  assert.equal(answersAgainMs(ping, 1000), 60);
});

test('answers again: a reply printed after the pause to a request sent before it does not count', () => {
  // Sent at 995 (before the pause at 1000), held and answered at 1040; the first request sent after the pause is answered at 1070.
  const ping = pingOf(2000, [[1000, 1070]], [{ seq: 500, atMs: 1040, rttMs: 45 }]);
  assert.equal(answersAgainMs(ping, 1000), 70);
});

test('answers again: NaN when no request sent after the pause was answered', () => {
  assert.ok(Number.isNaN(answersAgainMs(pingOf(500, []), 1000)));
});

test('schedstat: run and wait ns parsed; anything but three numbers is undefined', () => {
  assert.deepEqual(parseSchedstat('193673 98365 2\n'), { runNs: 193673, waitNs: 98365 });
  assert.equal(parseSchedstat(''), undefined);
  assert.equal(parseSchedstat('1 2'), undefined);
  assert.equal(parseSchedstat('1 x 3'), undefined);
});

test('a gap\'s share: from the last sample at or before its start to the first at or after its end', () => {
  const ms = 1e6;
  const samples = [
    { atMs: 0, runNs: 0, waitNs: 0 },
    { atMs: 100, runNs: 5 * ms, waitNs: 10 * ms },
    { atMs: 400, runNs: 6 * ms, waitNs: 290 * ms }, // the sampler itself late: the counters still cover the window
    { atMs: 500, runNs: 9 * ms, waitNs: 300 * ms },
  ];
  const s = shareOf('hub', samples, 150, 380);
  assert.deepEqual(s, { who: 'hub', runMs: 1, waitMs: 280, fromMs: 100, toMs: 400 });
  assert.equal(verdictOf(s!, 230), 'starved');
  assert.equal(verdictOf({ ...s!, waitMs: 10, runMs: 200 }, 230), 'busy');
  assert.equal(verdictOf({ ...s!, waitMs: 10, runMs: 10 }, 230), 'idle');
  assert.equal(shareOf('hub', samples.slice(0, 1), 150, 380), undefined);
});

test('runnable tasks: /proc/loadavg\'s fourth field', () => {
  assert.equal(parseRunnable('17.53 18.94 18.37 23/1204 99881\n'), 23);
  assert.equal(parseRunnable('garbage'), undefined);
});

test('a gap explained: ping not scheduled (short round trips), the path\'s daemons waiting, or neither', () => {
  const share = (who: string, waitMs: number): { who: string; runMs: number; waitMs: number; fromMs: number; toMs: number } => ({ who, runMs: 1, waitMs, fromMs: 0, toMs: 200 });
  const shares = [share('ping', 150), share('c3', 80), share('hub', 60), share('c2', 10), share('c1', 500)];
  assert.deepEqual(explainGap(shares, 160, 12, ['c3', 'hub', 'c2']), { kind: 'pinger', waitedMs: 150 });
  assert.deepEqual(explainGap(shares, 220, 200, ['c3', 'hub', 'c2']), { kind: 'scheduling', waitedMs: 150 });
  // c1 is off the path: its wait does not explain the stall.
  assert.deepEqual(explainGap(shares, 220, 200, ['c3', 'c2']), { kind: 'unexplained', waitedMs: 90 });
  // A host's forwarder thread: the longer of its wait and the event loop's.
  assert.deepEqual(explainGap([...shares, share('c2/fwd', 30)], 220, 200, ['c3', 'c2']), { kind: 'scheduling', waitedMs: 110 });
});

/** A QEMU move's sources for timeline.ts: STOP at 1003, the held frames handed at `handed`, RESUME at 1100, the guest's first answer out of its NIC at 1125. */
function qemuMove(ping: PingFigures, handed: number | undefined): TimelineSources {
  const fields: Record<string, number | undefined> = { stoppedAtMs: 1003, resumedAtMs: 1100, heldReleasedAtMs: handed, firstEchoReplyAtMs: 1125 };
  return {
    logged: (_host, _msg, field) => fields[field],
    steps: [], migration: {} as TimelineSources['migration'], ping, stream: { bytes: 0, intact: true, error: undefined }, from: 'c1', to: 'c2',
    logs: { sent: 's', released: 'r', ready: 'y', resumed: 'u', firstFrame: 'f' },
  };
}

test('a QEMU gap\'s account: ping\'s sampling + QEMU\'s downtime + the guest waking + the answer\'s trip make the gap', () => {
  // The last reply before the STOP at 1000; held pings answered from 1127 (sent at 1010, before the RESUME).
  const ping = pingOf(2000, [[1001, 1127]], [{ seq: 900, atMs: 1127, rttMs: 117 }]);
  const a = gapAccount(qemuMove(ping, 1095))!;
  assert.deepEqual(
    { samplingMs: a.samplingMs, qemuDowntimeMs: a.qemuDowntimeMs, wakeMs: a.wakeMs, tripMs: a.tripMs, gapMs: a.gapMs, guestOwnMs: a.guestOwnMs, fromStopMs: a.fromStopMs, waited: a.waited },
    { samplingMs: 3, qemuDowntimeMs: 97, wakeMs: 25, tripMs: 2, gapMs: 127, guestOwnMs: 122, fromStopMs: 124, waited: true },
  );
  assert.equal(a.samplingMs + a.qemuDowntimeMs + a.wakeMs + a.tripMs, a.gapMs);
});

test('a QEMU gap\'s account: the guest had nothing waiting when the held frames reached its port after the RESUME', () => {
  const ping = pingOf(2000, [[1001, 1127]], [{ seq: 900, atMs: 1127, rttMs: 117 }]);
  assert.equal(gapAccount(qemuMove(ping, 1104))!.waited, false);
  assert.equal(gapAccount(qemuMove(ping, undefined))!.waited, false);
});

test('a QEMU gap\'s account: undefined without the guest\'s first answer or a reply after it', () => {
  const ping = pingOf(1000, []);
  assert.equal(gapAccount(qemuMove(ping, 1095)), undefined);
});
