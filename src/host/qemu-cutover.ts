/**
 * The destination's last step of a QEMU VM's migration: the guest run here
 * at the commit, and the moments of it kept for the cutover's time line.
 *
 *   commit     migrate-commit heard; the held frames (the source's flush
 *              first) handed to the port — they wait in QEMU's net queue
 *              until the guest runs
 *   cont       one QMP `cont`: the incoming migration has completed (that is
 *              what `ready` meant), so nothing needs asking first; QEMU
 *              refusing it falls back to the careful resume (a migration
 *              still under way cancelled first)
 *   RESUME     QEMU's event: with the source's STOP, the guest's own downtime
 *   first out  the first frame the guest itself sends (QEMU's RARP aside)
 *              and its first ping answer, logged apart: they may come after
 *              the `resumed` report
 *
 * Logged (wall clock, ms): QEMU_RESUMED_LOG with `commitAtMs`,
 * `heldReleasedAtMs`, `contSentAtMs`, `resumedAtMs` (QEMU's timestamp);
 * QEMU_FIRST_FRAME_LOG with `firstFrameAtMs` and `firstEchoReplyAtMs` (the
 * first ICMP echo reply out of the guest: a ping answered), once the reply came.
 */
import type { Frame } from '../common/frame.ts';
import type { Logger } from '../common/logger.ts';
import { isRarpFrom } from './qemu-migration-receive.ts';
import type { QemuVm } from './qemu-vm.ts';

/** The destination's log line when the incoming QEMU has loaded the stream (`trigger`: rarp or event; `readyAtMs`, wall clock). */
export const QEMU_READY_LOG = 'QEMU stream loaded and its RAM verified: ready (the guest does not run until the commit)';

/** The destination's log line when a QEMU VM runs here; `resumedAtMs` is QEMU's RESUME (wall clock, ms): with the source's STOP, the guest's own downtime. */
export const QEMU_RESUMED_LOG = 'QEMU guest resumed here';

/** The destination's log line at the first ping the guest answered after it ran here (`firstFrameAtMs`: its first frame of any kind, `firstEchoReplyAtMs`; wall clock). */
export const QEMU_FIRST_FRAME_LOG = 'QEMU guest sent its first frame here';

/** How long the first frame out of the guest is watched for after `cont`. */
const FIRST_FRAME_WATCH_MS = 10_000;

export interface QemuCutoverInit {
  readonly id: string;
  readonly vm: QemuVm;
  /** The port the guest's frames come out of (a stream or packet port: its `watch`). */
  readonly port: { watch(fn: (frames: readonly Frame[]) => void): () => void } | undefined;
  readonly wallNow: () => number;
  readonly log: Logger;
  /** When migrate-commit was heard and when the held frames were handed to the port (wall clock, ms). */
  readonly commitAtMs: number;
  readonly heldReleasedAtMs: number;
}

/** Runs the incoming guest (`cont`) and resolves once QEMU says it runs (its RESUME, or `cont` answered if the event does not come). */
export async function runIncomingQemu(o: QemuCutoverInit): Promise<void> {
  const { vm, log } = o;
  const stopWatch = watchFirstFrame(o);
  const resumed = vm.qmp.waitForEvent('RESUME', { timeoutMs: 5000 });
  resumed.catch(() => undefined);
  const contSentAtMs = Math.round(o.wallNow());
  try {
    await vm.qmp.execute('cont');
  } catch (err) {
    log.debug({ id: o.id, err: String(err) }, 'cont refused: resuming the careful way');
    try {
      await vm.resume();
    } catch (e) {
      stopWatch();
      throw e;
    }
  }
  const resumedAtMs = await resumed.then((e) => Math.round(e.timestamp * 1000), () => undefined);
  log.info({ id: o.id, commitAtMs: o.commitAtMs, heldReleasedAtMs: o.heldReleasedAtMs, contSentAtMs, resumedAtMs }, QEMU_RESUMED_LOG);
}

/** Whether `f` is an IPv4 ICMP echo reply (what a ping's answer is). */
function isEchoReply(f: Frame): boolean {
  const d = f.data;
  if (d.length < 35 || d.readUInt16BE(12) !== 0x0800 || d[23] !== 1) return false;
  const ihl = (d[14]! & 0x0f) * 4;
  return d.length > 14 + ihl && d[14 + ihl] === 0;
}

/**
 * Logs the first frame out of the guest (not QEMU's RARP for it) and the
 * first ICMP echo reply (a ping's answer, which may queue behind others);
 * returns the function that stops watching.
 */
function watchFirstFrame(o: QemuCutoverInit): () => void {
  if (o.port === undefined) return () => undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let unwatch = (): void => undefined;
  const stop = (): void => {
    clearTimeout(timer);
    unwatch();
  };
  let firstFrameAtMs: number | undefined;
  unwatch = o.port.watch((frames) => {
    if (!frames.some((f) => !isRarpFrom(f, o.vm.mac))) return;
    firstFrameAtMs ??= Math.round(o.wallNow());
    if (!frames.some(isEchoReply)) return;
    stop();
    o.log.info({ id: o.id, firstFrameAtMs, firstEchoReplyAtMs: Math.round(o.wallNow()) }, QEMU_FIRST_FRAME_LOG);
  });
  timer = setTimeout(() => {
    stop();
    // No ping answered in the watch: the first frame alone, if any.
    if (firstFrameAtMs !== undefined) o.log.info({ id: o.id, firstFrameAtMs }, QEMU_FIRST_FRAME_LOG);
  }, FIRST_FRAME_WATCH_MS);
  timer.unref();
  return stop;
}
