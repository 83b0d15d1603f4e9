/**
 * vnet's row of the cutover benchmark: the same probes and layout idea as
 * the VXLAN baseline (a ping every 10 ms from a VM on a third host, a checked
 * TCP stream into the VM that moves), on the real overlay: the controller in
 * this process, a hub and three spokes as `vnet daemon` processes (TLS
 * tunnels on loopback), every VM a network namespace holding a TAP device.
 * VM x (a model guest: idle, 16 MiB of memory, 4 MiB of disk) moves from c1
 * to c2 through the controller (`startMigration`, smart-stop): its processes
 * frozen for the downtime, its TAP attachment handed from c1's daemon to
 * c2's, its guest moved by the migration engine.
 *
 *   hub ── c1 ── vmx (moves to c2)     c2     c3 ── vmp (pings vmx)
 *
 * Figures: the pings lost and the longest gap between replies; the time from
 * the pause (the migration's own record) until the VM answers again (the
 * first reply to a request sent after the pause: answersAgainMs); the
 * migration's cutover time from its API (the pause until every daemon
 * acknowledged the rules that point at the destination); the frames the
 * daemons counted lost at the cutover; the TCP stream's verdict.
 *
 * With `qemu`, VM x is instead a real guest under QEMU (128 MiB, TCG) on a
 * stream port of c1's daemon (`qemu: 'stream'`), or on a TAP device QEMU
 * holds and c1's daemon reads through a packet port (`qemu: 'tap'`; the
 * destination makes its own TAP device behind a held packet port), moved
 * by QEMU's own migration over the
 * daemons' migration channel (rule qemu); the TCP stream bounces off the
 * guest's echo service (port 7), and the guest's own downtime (the source
 * QEMU's STOP to the destination's RESUME, from the daemons' logs) is
 * reported beside the ping gap.
 *
 * With `moves` N (namespace VM), the VM moves back and forth N times under
 * one ping, each move a second after the last one's fast-path link went;
 * the row shows the worst move, and each move's spans and ping gaps are
 * kept for phases.ts.
 *
 * Reuses test/helpers/netns-overlay.ts (namespaces, daemons and controller,
 * removed at the end).
 */
import { silentLogger } from '../../src/common/logger.ts';
import { applyNice, niceFor } from '../../src/common/process-priority.ts';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { startNetnsOverlay } from '../../test/helpers/netns-overlay.ts';
import { QEMU_FIRST_FRAME_LOG, QEMU_READY_LOG, QEMU_RESUMED_LOG } from '../../src/host/qemu-cutover.ts';
import { QEMU_SENT_LOG } from '../../src/host/qemu-migration-send.ts';
import { SOURCE_RELEASED_LOG } from '../../src/host/source-migration.ts';
import type { ControllerEvent, MoveFigures } from './phases.ts';
import { answersAgainMs, startEchoStream, startPing, startStream, type PingFigures } from './probes.ts';
import { watchScheduling } from './sched-watch.ts';
import { gapAccount, timelineReport, type TimelineSources } from './timeline.ts';
import type { CutoverFigures } from './vxlan-baseline.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A QEMU guest: from its STOP until the first reply after its RESUME, ms. */
export function answersAfterResumeMs(ping: PingFigures, stoppedAt: number, resumedAt: number): number {
  const first = ping.replies.find((r) => r.atMs >= resumedAt);
  return first === undefined ? Number.NaN : first.atMs - stoppedAt;
}

/** The largest figure, NaN if none. */
function worst(figures: readonly number[]): number {
  const known = figures.filter((n) => !Number.isNaN(n));
  return known.length === 0 ? Number.NaN : Math.max(...known);
}

/** `moves` (namespace VM only, default 1): the VM moves c1→c2→c1… that many times under the same ping, each move's spans and ping gaps kept (phases.ts). */
export async function vnetOverlay(opts: { qemu?: 'stream' | 'tap'; moves?: number } = {}): Promise<CutoverFigures> {
  const qemu = opts.qemu !== undefined;
  const moves = qemu ? 1 : opts.moves ?? 1;
  // The controller runs in this process: at the priority `vnet controller` takes as root (the daemons take theirs themselves).
  applyNice(niceFor(undefined), silentLogger());
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const o = await startNetnsOverlay({ after: (fn) => { cleanups.push(fn); } }, {
      hosts: ['c1', 'c2', 'c3'],
      vms: [opts.qemu !== undefined ? { host: 'c1', qemu: { memoryMiB: 128, nic: opts.qemu } } : { host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }],
      policy: '',
      tools: qemu ? ['ping', 'qemu-system-x86_64'] : ['ping'],
    });
    const [x, p] = o.vms;
    // A QEMU guest boots under TCG first (up to a few minutes on a loaded machine).
    let first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', x!.ip]);
    for (let i = 0; qemu && first.code !== 0 && i < 120; i++) first = await o.exec(1, ['ping', '-n', '-c', '1', '-W', '2', x!.ip]);
    if (first.code !== 0) throw new Error(`vmp cannot reach vmx before the move: ${first.stdout}${first.stderr}`);
    for (let i = 0; i < 3000 && !(o.model.getVm(x!.mac)?.host === 'c1' && o.model.getVm(p!.mac)?.host === 'c3'); i++) await sleep(10);

    // What the controller did, for the ping gaps phases.ts explains.
    const events: ControllerEvent[] = [];
    cleanups.push(o.model.subscribe((e) => {
      if (e.type === 'vm-changed') events.push({ at: e.time, what: `vm ${e.payload.vm.name ?? e.payload.vm.mac} on ${e.payload.vm.host} (${e.payload.vm.state})` });
      else if (e.type === 'link-removed') events.push({ at: e.time, what: `link removed ${e.payload.a}–${e.payload.b}: ${e.payload.reason}` });
      else if (e.type === 'link-changed') events.push({ at: e.time, what: `link ${e.payload.link.a}–${e.payload.link.b} ${e.payload.link.state ?? ''}` });
      else if (e.type === 'decision' && e.payload.decision.kind !== 'no-change') events.push({ at: e.time, what: `${e.payload.decision.kind}: ${e.payload.decision.reason.slice(0, 110)}` });
    }));
    const owner = { after: (fn: () => void): void => { cleanups.push(fn); } };
    const stream = qemu ? startEchoStream(p!.ns, x!.ip, 7, undefined, owner) : await startStream(x!.ns, p!.ns, x!.ip, 5303, undefined, owner);
    // 10 ms apart: 10 s for a QEMU guest, 6 s for one move, until stopped for several.
    const ping = startPing(p!.ns, x!.ip, qemu ? 1000 : moves > 1 ? 1_000_000 : 600, owner);
    // Who was scheduled under each ping gap (the pinger, every daemon's event loop, the controller: this process).
    const sched = watchScheduling({ ping: ping.pid, ...Object.fromEntries(['hub', 'c1', 'c2', 'c3'].map((h) => [h, o.daemon(h).pid])), controller: process.pid });
    cleanups.push(() => sched.stop());
    await sleep(1500);
    const figures: MoveFigures[] = [];
    let at = 'c1';
    for (let i = 0; i < moves; i++) {
      const to = at === 'c1' ? 'c2' : 'c1';
      const startedAt = Date.now();
      const started = await o.model.startMigration!('vm0', to, 'bench', { rule: qemu ? 'qemu' : 'smart-stop' });
      let done: MigrationView | undefined;
      for (let k = 0; k < 6000 && done === undefined; k++) {
        const m = o.model.getMigration(started.id);
        if (m !== undefined && (m.step === 'done' || m.step === 'aborted')) done = m;
        else await sleep(10);
      }
      if (done === undefined || done.state !== 'succeeded') throw new Error(`move ${i + 1} did not succeed: ${JSON.stringify(done ?? o.model.getMigration(started.id))}`);
      at = to;
      // The migration's fast-path link goes after its grace period; the next move starts from the same overlay, a second later.
      let linkRemovedAt: number | undefined;
      for (let k = 0; moves > 1 && k < 3000 && linkRemovedAt === undefined; k++) {
        if (o.model.getLink('c1', 'c2') === undefined) linkRemovedAt = Date.now();
        else await sleep(10);
      }
      if (moves > 1) await sleep(1000);
      figures.push({ migration: o.model.getMigration(started.id) ?? done, startedAt, linkRemovedAt, until: Number.POSITIVE_INFINITY });
    }
    // A move owns the ping up to the next move's pause: the next one's transfer, before it, is this one's late part.
    for (let i = 0; i + 1 < figures.length; i++) {
      const next = figures[i + 1]!.migration.cutover;
      figures[i]!.until = next?.pausedAt == null ? figures[i + 1]!.startedAt : next.pausedAt - (next.spans?.pausedHeard ?? 0);
    }
    if (moves > 1) ping.stop();
    const pingFigures = await ping.done;
    // From the source's pause (the controller heard it `pausedHeard` ms later, at `pausedAt`).
    for (const f of figures) if (f.migration.cutover?.pausedAt != null) f.answersAgainMs = answersAgainMs(pingFigures, f.migration.cutover.pausedAt - (f.migration.cutover.spans?.pausedHeard ?? 0));
    sched.stop();
    const streamFigures = await stream.stop();
    let guest: { stoppedAt: number; resumedAt: number } | undefined;
    for (let i = 0; qemu && i < 500 && guest === undefined; i++) {
      const stoppedAt = o.logged('c1', QEMU_SENT_LOG, 'stoppedAtMs');
      const resumedAt = o.logged('c2', QEMU_RESUMED_LOG, 'resumedAtMs');
      if (stoppedAt !== undefined && resumedAt !== undefined) guest = { stoppedAt, resumedAt };
      else await sleep(10);
    }
    const last = figures[figures.length - 1];
    const sources: TimelineSources | undefined = qemu && last !== undefined
      ? {
        logged: (host, msg, field) => o.logged(host, msg, field), steps: o.migrationSteps(last.migration.id), migration: last.migration,
        ping: pingFigures, stream: streamFigures, from: 'c1', to: 'c2',
        logs: { sent: QEMU_SENT_LOG, released: SOURCE_RELEASED_LOG, ready: QEMU_READY_LOG, resumed: QEMU_RESUMED_LOG, firstFrame: QEMU_FIRST_FRAME_LOG },
      }
      : undefined;
    const timeline = sources === undefined ? undefined : timelineReport(opts.qemu === 'tap' ? 'the QEMU guest on TAP' : 'the QEMU guest on a stream port', sources);
    return {
      timeline,
      gapAccount: sources === undefined ? undefined : gapAccount(sources),
      path: opts.qemu === 'tap' ? 'vnet, QEMU guest on TAP (packet ports)' : qemu ? 'vnet, QEMU guest (QEMU migration)' : 'vnet (TAP hand-over, TLS overlay)',
      guestDowntimeMs: guest === undefined ? undefined : guest.resumedAt - guest.stoppedAt,
      ping: pingFigures,
      stream: streamFigures,
      cutoverMs: guest !== undefined ? answersAfterResumeMs(pingFigures, guest.stoppedAt, guest.resumedAt) : worst(figures.map((f) => f.answersAgainMs ?? Number.NaN)),
      framesLost: figures.reduce((n, f) => n + (f.migration.cutover?.lost ?? 0), 0),
      acknowledgedMs: worst(figures.map((f) => f.migration.cutover?.timeMs ?? Number.NaN)),
      moves: figures,
      events,
      sched,
    };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
