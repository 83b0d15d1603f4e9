/**
 * TLM's two transfer channels over one RAM, as a plan of which page goes
 * next on which channel. mtx (channel 0) walks RAM once, first page to last,
 * skipping pages that are dirty or already queued for dtx (they will be
 * re-sent anyway). dtx (channel 1), whenever it runs dry, takes the dirty log
 * and re-sends the dirtied pages behind mtx's cursor (pages ahead of it are
 * mtx's to send, with their latest content). The two share the link by bytes.
 *
 * Invariant: every page whose latest write came after its last send is dirty,
 * queued on dtx, or ahead of mtx — exactly what `rest()` returns at pause.
 */
import type { GuestMemory } from '../guest.ts';

const EMPTY = new Uint32Array(0);

/** What to do next: send `page` on `ch`, skip a page, or wait for the guest. */
export type DualStep = { readonly kind: 'send'; readonly page: number; readonly ch: 0 | 1 } | { readonly kind: 'skip' } | { readonly kind: 'idle' };

const SKIP: DualStep = Object.freeze({ kind: 'skip' });
const IDLE: DualStep = Object.freeze({ kind: 'idle' });

export class DualChannelPlan {
  readonly #mem: GuestMemory;
  readonly #n: number;
  readonly #pending: Uint8Array;
  #mtx = 0;
  #dtx: Uint32Array = EMPTY;
  #dtxCursor = 0;
  #mtxBytes = 0;
  #dtxBytes = 0;
  /** Pages dtx has taken from the dirty log so far (for the dirty-rate meter). */
  taken = 0;
  skipped = 0;

  constructor(memory: GuestMemory) {
    this.#mem = memory;
    this.#n = memory.pageCount;
    this.#pending = new Uint8Array(this.#n);
  }

  get mtxFraction(): number {
    return this.#n > 0 ? this.#mtx / this.#n : 1;
  }

  get mtxDone(): boolean {
    return this.#mtx >= this.#n;
  }

  /** Pages owed to the destination if the guest paused now. */
  remaining(): number {
    return (this.#n - this.#mtx) + this.#mem.dirtyCount() + (this.#dtx.length - this.#dtxCursor);
  }

  next(): DualStep {
    if (this.#dtxCursor >= this.#dtx.length && this.#mem.dirtyCount() > 0) {
      const dirty = this.#mem.takeDirty();
      this.taken += dirty.length;
      let k = 0;
      for (const p of dirty) if (p < this.#mtx) { dirty[k++] = p; this.#pending[p] = 1; }
      this.#dtx = dirty.subarray(0, k);
      this.#dtxCursor = 0;
    }
    const dtxHas = this.#dtxCursor < this.#dtx.length;
    const mtxHas = this.#mtx < this.#n;
    if (!dtxHas && !mtxHas) return IDLE;
    if (dtxHas && (!mtxHas || this.#dtxBytes <= this.#mtxBytes)) {
      const page = this.#dtx[this.#dtxCursor++] ?? 0;
      this.#pending[page] = 0;
      return { kind: 'send', page, ch: 1 };
    }
    const page = this.#mtx++;
    if (this.#mem.isDirty(page) || this.#pending[page] === 1) { this.skipped++; return SKIP; }
    return { kind: 'send', page, ch: 0 };
  }

  /** Bytes a channel just sent (the two share the link by bytes). */
  account(ch: 0 | 1, bytes: number): void {
    if (ch === 0) this.#mtxBytes += bytes;
    else this.#dtxBytes += bytes;
  }

  /** At pause: every page still owed (queued on dtx, dirty, or not yet reached by mtx), ascending. */
  rest(): Uint32Array {
    const all = new Uint8Array(this.#n);
    for (let i = this.#dtxCursor; i < this.#dtx.length; i++) all[this.#dtx[i] ?? 0] = 1;
    for (const p of this.#mem.takeDirty()) all[p] = 1;
    for (let p = this.#mtx; p < this.#n; p++) all[p] = 1;
    let count = 0;
    for (let p = 0; p < this.#n; p++) count += all[p] ?? 0;
    const out = new Uint32Array(count);
    let k = 0;
    for (let p = 0; p < this.#n; p++) if (all[p] === 1) out[k++] = p;
    return out;
  }
}

/**
 * Distinct pages dirtied per ms at a CPU share of 1, smoothed over about 1/20
 * of the elapsed time. Each interval's rate is divided by the share in force
 * during it; a throttle change closes the interval (`force`).
 */
export class DirtyRateMeter {
  #at: number;
  #total = 0;
  #rate = 0;
  #set = false;

  constructor(start: number) {
    this.#at = start;
  }

  get perMsFullShare(): number {
    return this.#rate;
  }

  /** `total`: pages ever dirtied so far; `share`: the CPU share since the last sample. */
  sample(now: number, elapsed: number, total: number, share: number, force = false): void {
    const dt = now - this.#at;
    if (dt <= 0 || (!force && dt < elapsed / 200)) return;
    const rate = (total - this.#total) / dt / Math.max(1e-3, share);
    const w = Math.min(1, dt / Math.max(1, elapsed / 20));
    this.#rate = this.#set ? this.#rate + w * (rate - this.#rate) : rate;
    this.#set = true;
    this.#at = now;
    this.#total = total;
  }
}
