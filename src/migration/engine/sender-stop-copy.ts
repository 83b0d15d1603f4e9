/**
 * The sender's stop-and-copy, once the guest is paused: the disk writes
 * still queued first, then the final dirty pages — shared in turn by the two
 * channels of a time-bound migration, on channel 0 otherwise. The device
 * state and the done record that follow are sender.ts's.
 */
import type { OutRecord } from './send-ledger.ts';

export interface StopCopyHost {
  /** Emits queued disk records; false when none was due. */
  sendQueuedDisk(out: OutRecord[]): boolean;
  sendPage(out: OutRecord[], page: number, ch: 0 | 1): void;
}

export class StopCopy {
  readonly #pages: Uint32Array;
  readonly #twoChannels: boolean;
  readonly #host: StopCopyHost;
  #cursor = 0;
  #ch: 0 | 1 = 0;

  constructor(pages: Uint32Array, twoChannels: boolean, host: StopCopyHost) {
    this.#pages = pages;
    this.#twoChannels = twoChannels;
    this.#host = host;
  }

  get pagesLeft(): number {
    return this.#pages.length - this.#cursor;
  }

  /** Emits the next queued disk record or final page; false once every final page is out. */
  step(out: OutRecord[]): boolean {
    if (this.#host.sendQueuedDisk(out)) return true;
    if (this.#cursor < this.#pages.length) {
      const p = this.#pages[this.#cursor++] ?? 0;
      // Two channels (time-bound) share the last pages; one channel otherwise.
      const ch: 0 | 1 = this.#twoChannels ? this.#ch : 0;
      this.#ch = this.#ch === 0 ? 1 : 0;
      this.#host.sendPage(out, p, ch);
      return true;
    }
    return false;
  }
}
