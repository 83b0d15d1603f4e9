import type { ManualClock } from '../../src/common/clock.ts';

/**
 * A busy spell of `ms` on `clock` (the manual clock of the code under test,
 * which runs in this process) at the end of this turn of the event loop,
 * before the loop reads its sockets again: what a loop busy for that long
 * does to timers that judge a peer's silence. Whatever this turn wrote (a
 * pong, a welcome, a hello: written by the end of the turn) is in the
 * kernel's buffers, unread, when the timers that fell due run.
 *
 * How: at the turn's end (an immediate: after this turn's reads and its own
 * immediates, a beat's judging among them), a real timer due at the next
 * tick, and the loop busy past that tick, so it runs the timer as it turns
 * again, before it polls (Node runs the due timers first); there the clock
 * jumps `ms` (`ManualClock.stall`: each of its timers due on the way fires
 * once, as Node's do). Nothing rests on this process getting the CPU on
 * time: a process not run for seconds only runs the same sequence later.
 * `onStall` runs just before the jump (for a time line).
 */
export function stallAtTurnEnd(clock: ManualClock, ms: number, onStall?: () => void): void {
  setImmediate(() => {
    setTimeout(() => {
      onStall?.();
      clock.stall(ms);
    }, 0);
    // setTimeout counts from now: busy past its tick, it is due when the loop turns.
    const end = performance.now() + 3;
    while (performance.now() < end) { /* the loop is monopolised */ }
  });
}
