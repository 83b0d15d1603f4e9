/**
 * The sender's catch-up (sender.ts's header, "Catch-up"): before a pre-copy
 * iteration is measured and before the guest pauses, a mark goes out and
 * nothing more is produced until the receiver's `applied` for it came back,
 * so the rule sees the iteration delivered and the pause starts with the
 * pipe empty. Off (always caught up) unless the driver asks for it.
 */
import type { OutRecord, SendLedger } from './send-ledger.ts';

export class SenderCatchUp {
  /** The driver asked for catch-up (SenderInit.catchUp). */
  readonly enabled: boolean;
  readonly #ledger: SendLedger;
  /** The mark sent for the catch-up under way, and the latest mark the receiver applied. */
  #markSeq: number | undefined;
  #appliedSeq = 0;

  constructor(enabled: boolean, ledger: SendLedger) {
    this.enabled = enabled;
    this.#ledger = ledger;
  }

  /** Whether a catch-up waits for the receiver's `applied`. */
  get awaiting(): boolean {
    return this.#markSeq !== undefined && this.#appliedSeq < this.#markSeq;
  }

  /** The receiver's `applied`: every record up to mark `seq` is applied on the destination. */
  applied(seq: number): void {
    this.#appliedSeq = Math.max(this.#appliedSeq, seq);
  }

  /**
   * Whether the receiver has applied everything sent before now: true at
   * once without catch-up; else a mark goes out (once) and this is false
   * until its `applied` came back (records sent after the mark — disk
   * writes — do not restart the wait).
   */
  caughtUp(out: OutRecord[]): boolean {
    if (!this.enabled) return true;
    if (this.#markSeq === undefined) {
      this.#markSeq = this.#ledger.seq++;
      this.#ledger.emit(out, { t: 'mark', seq: this.#markSeq }, 0, 'control');
      return false;
    }
    if (this.#appliedSeq < this.#markSeq) return false;
    this.#markSeq = undefined;
    return true;
  }
}
