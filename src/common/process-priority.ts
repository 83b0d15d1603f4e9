import { getPriority, setPriority } from 'node:os';
import type { Logger } from './logger.ts';

/**
 * The scheduling priority of a vnet process (its nice value). A daemon
 * forwards frames and answers the controller; the controller drives
 * cutovers whose every step (the pause heard, the commit, each daemon's
 * acknowledgement) waits for a process to be scheduled: on a busy machine
 * a process at the default priority waits behind every runnable process
 * there, tens to hundreds of milliseconds (docs/control-protocol.md,
 * "Cutover spans"). Like Open vSwitch's ovs-vswitchd, which ovs-ctl starts
 * at nice -10, vnet's daemon and controller raise themselves to -10 when
 * they run as root, unless told otherwise (`nice:` in the daemon's
 * configuration, `--nice` for the controller; 0 leaves the priority alone).
 *
 * Linux keeps the nice value per thread: it is set for the calling thread
 * (the event loop's) and inherited by the threads started after it, so it
 * is set first thing at start.
 */

/** The default nice value of vnet's daemon and controller when they run as root. */
export const DEFAULT_NICE = -10;

/** The nice value to use: the configured one, else DEFAULT_NICE as root, else none (left alone). */
export function niceFor(configured: number | undefined, euid: number | undefined = process.geteuid?.()): number | undefined {
  if (configured !== undefined) return configured;
  return euid === 0 ? DEFAULT_NICE : undefined;
}

/**
 * Set this thread's nice value; a refusal (no CAP_SYS_NICE to raise it) is
 * logged and the process runs on at the priority it had. Returns the value
 * in force afterwards.
 */
export function applyNice(nice: number | undefined, log: Logger): number {
  const before = getPriority();
  if (nice === undefined || nice === before) return before;
  try {
    setPriority(nice);
    log.info({ nice, before }, 'scheduling priority set');
  } catch (err) {
    log.warn({ nice, before, code: (err as { code?: string }).code }, 'cannot set the scheduling priority (raising it takes root or CAP_SYS_NICE); running at the one inherited');
  }
  return getPriority();
}
