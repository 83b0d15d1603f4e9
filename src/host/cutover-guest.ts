/**
 * The source guest as the migration engine gets it: the VM's guest with the
 * cutover's two rules around its pause and resume.
 *
 *   pause   the daemon holds the VM's port first (frames to the VM are
 *           queued from here on), then the guest stops, then the agent
 *           hears of it (`paused` report, the VM runtime's own pause)
 *   resume  only once the agent allows it (on `migrate-abort`). The engine
 *           resumes a paused guest when it fails; after the pause that is
 *           the destination's copy racing ours, so it is refused and counted:
 *           the guest stays paused until the controller's verdict.
 *
 * Everything else goes straight to the VM's guest.
 */
import type { Guest, GuestDisk, GuestGeometry, GuestMemory, GuestRunState } from '../migration/guest.ts';

export interface CutoverHooks {
  /** Before the guest stops: hold the VM's port. */
  beforePause(): void;
  /** After it stopped. */
  afterPause(now: number): void;
}

export class CutoverGuest implements Guest {
  readonly #inner: Guest;
  readonly #hooks: CutoverHooks;
  #mayResume = false;
  #paused = false;
  /** Resumes the engine asked for and the cutover refused. */
  refusedResumes = 0;

  constructor(inner: Guest, hooks: CutoverHooks) {
    this.#inner = inner;
    this.#hooks = hooks;
  }

  get geometry(): GuestGeometry { return this.#inner.geometry; }
  get memory(): GuestMemory { return this.#inner.memory; }
  get disk(): GuestDisk | undefined { return this.#inner.disk; }
  get runState(): GuestRunState { return this.#inner.runState; }
  get throttle(): number { return this.#inner.throttle; }
  /** Whether the engine has paused the guest. */
  get paused(): boolean { return this.#paused; }

  advance(now: number): void { this.#inner.advance(now); }

  pause(now: number): void {
    if (this.#inner.runState === 'paused') { this.#inner.pause(now); return; }
    this.#hooks.beforePause();
    this.#inner.pause(now);
    this.#paused = true;
    this.#hooks.afterPause(now);
  }

  resume(now: number): void {
    if (!this.#mayResume) {
      this.refusedResumes++;
      return;
    }
    this.#inner.resume(now);
  }

  /** The verdict is abort: the guest may run here again. */
  allowResume(): void {
    this.#mayResume = true;
  }

  setThrottle(share: number): void { this.#inner.setThrottle(share); }
  readDeviceState(): Uint8Array { return this.#inner.readDeviceState(); }
  writeDeviceState(state: Uint8Array): void { this.#inner.writeDeviceState(state); }
}
