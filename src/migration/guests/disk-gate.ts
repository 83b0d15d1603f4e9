/**
 * A guest's side of synchronous disk replication, shared by every guest that
 * writes its own disk (the model guest, the trace guest): the gate in force
 * (GuestDisk.setWriteGate), the one write it refused, and issuing that write
 * once the gate — or its removal — allows.
 *
 *   admit     the guest's workload asks before each write (no gate: yes)
 *   hold      a refused write waits here, unwritten; the guest's disk stalls
 *   retry     at a later time: ask again, issue it if admitted
 *   set       a gate comes or goes: run the guest up to `now`, then retry
 *   completed pending writes were acknowledged: run up to `now`, then retry
 *
 * The guest supplies how to run up to a time, whether it runs, its current
 * time, and how to issue a held write to its local disk.
 */
import type { DiskWriteGate } from '../guest.ts';

export interface DiskGateHost<W> {
  /** Run the guest's workload up to `now`. */
  advance(now: number): void;
  /** A paused guest issues nothing. */
  running(): boolean;
  /** The time the guest has run up to. */
  last(): number;
  /** Write a held write to the guest's local disk. */
  issue(write: W): void;
}

export class DiskGate<W extends { readonly block: number }> {
  readonly #host: DiskGateHost<W>;
  #gate: DiskWriteGate | undefined;
  #waiting: W | undefined;

  constructor(host: DiskGateHost<W>) {
    this.#host = host;
  }

  /** Whether a gate is in force (synchronous replication). */
  get gated(): boolean {
    return this.#gate !== undefined;
  }

  /** The write the gate refused, waiting to be issued. */
  get waiting(): W | undefined {
    return this.#waiting;
  }

  /** May the guest write `block` at `at`? Always, without a gate. */
  admit(block: number, at: number): boolean {
    return this.#gate === undefined || this.#gate.admit(block, at);
  }

  /** Keep a refused write until `retry` can issue it. */
  hold(write: W): void {
    this.#waiting = write;
  }

  /** Issue the waiting write at `at` if the gate (or its absence) allows; true when nothing waits any more. */
  retry(at: number): boolean {
    const w = this.#waiting;
    if (w === undefined) return true;
    if (!this.admit(w.block, at)) return false;
    this.#host.issue(w);
    this.#waiting = undefined;
    return true;
  }

  /** GuestDisk.setWriteGate: the guest runs up to `now`, then a waiting write is retried under the new gate. */
  set(gate: DiskWriteGate | undefined, now: number): void {
    this.#host.advance(now);
    this.#gate = gate;
    if (this.#host.running()) this.retry(Math.max(this.#host.last(), now));
  }

  /** GuestDisk.writesCompleted: the guest runs up to `now`, then a waiting write is retried. */
  completed(now: number): void {
    this.#host.advance(now);
    if (this.#host.running()) this.retry(Math.max(this.#host.last(), now));
  }
}
