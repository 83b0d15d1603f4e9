import { runVirtualMigration } from '../migration/drivers/virtual-time.ts';
import { ModelGuest } from '../migration/guests/memory-guest.ts';
import { profileReferencePages, scaledProfile, type ProfileName } from '../migration/guests/workload-profiles.ts';
import { createStopRule } from '../migration/stop-rules/create-stop-rule.ts';
import type { StopRuleName } from '../migration/stop-rules/stop-rule.ts';
import type { MoveEstimate } from '../topology/scheduling.ts';

/**
 * What moving a VM costs, from the migration engine itself: the real sender
 * and receiver (disk bulk copy and replication, memory pre-copy with
 * redundancy elimination, the stop rule) run in virtual time over an
 * emulated link with the path's bandwidth and RTT (drivers/virtual-time.ts).
 *
 * A VM of several GiB is estimated on a scaled copy, as the engine's tests
 * do (`scaledProfile`): a guest of `samplePages` pages with its dirty and
 * disk-write rates and the link's bandwidth all scaled by samplePages / the
 * VM's pages, so the migration has the same shape (iterations, stop point)
 * and the same duration; bytes scale back by the inverse. One run costs a
 * few milliseconds; results are cached per (size, profile, rule, path).
 */

export interface MoveSpec {
  readonly memoryMiB: number;
  readonly diskGiB: number;
  readonly profile: ProfileName;
}

export interface PathSpec {
  readonly bandwidthMbit: number;
  readonly rttMs: number;
}

export interface MoveEstimatorInit {
  /** Pages of the scaled guest the engine runs (default 512). */
  readonly samplePages?: number;
  /** Stop rule the migrations use (default smart-stop, the coordinator's). */
  readonly rule?: StopRuleName;
}

const PAGE = 4096;

/** The engine's estimate of one migration's bytes and seconds. */
export async function estimateMove(vm: MoveSpec, path: PathSpec, init: MoveEstimatorInit = {}): Promise<MoveEstimate> {
  const samplePages = init.samplePages ?? 512;
  const pages = Math.max(1, Math.round((vm.memoryMiB * 1024 * 1024) / PAGE));
  const factor = Math.min(1, samplePages / pages);
  const simPages = Math.max(1, Math.round(pages * factor));
  const blocks = Math.round(((vm.diskGiB * 1024 ** 3) / PAGE) * factor);
  // scaledProfile scales by simPages / reference; ask for the size whose ratio to the reference is `factor`.
  const { profile } = scaledProfile(vm.profile, Math.max(1, Math.round(factor * profileReferencePages(vm.profile))));
  const guest = new ModelGuest({
    name: `estimate-${vm.profile}`, pageCount: simPages, blockCount: blocks, representation: 'synthetic',
    memoryWorkload: profile.memory, diskWorkload: profile.disk, seed: 7,
  });
  const r = await runVirtualMigration(
    { guest, rule: createStopRule(init.rule ?? 'smart-stop'), disk: blocks > 0 },
    { link: { bandwidthBps: path.bandwidthMbit * 1e6 * factor, rttMs: path.rttMs }, batchBytes: 64 * 1024 },
  );
  return { bytes: r.bytes.total / factor, seconds: r.totalMs / 1000 };
}

/** Estimates for many (VM, path) pairs, each distinct pair run once. */
export class MoveEstimateCache {
  readonly #init: MoveEstimatorInit;
  readonly #done = new Map<string, MoveEstimate>();

  constructor(init: MoveEstimatorInit = {}) {
    this.#init = init;
  }

  static key(vm: MoveSpec, path: PathSpec): string {
    return `${vm.memoryMiB}/${vm.diskGiB}/${vm.profile}@${path.bandwidthMbit}/${path.rttMs}`;
  }

  /** Run the engine for every pair not yet estimated. */
  async prepare(pairs: Iterable<{ vm: MoveSpec; path: PathSpec }>): Promise<void> {
    for (const { vm, path } of pairs) {
      const k = MoveEstimateCache.key(vm, path);
      if (!this.#done.has(k)) this.#done.set(k, await estimateMove(vm, path, this.#init));
    }
  }

  /** The estimate, if prepared. */
  get(vm: MoveSpec, path: PathSpec): MoveEstimate | undefined {
    return this.#done.get(MoveEstimateCache.key(vm, path));
  }

  get size(): number {
    return this.#done.size;
  }
}
