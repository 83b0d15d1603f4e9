import type { RuleSpec } from '../control/daemon-control.ts';

/**
 * Per host, the changes of its desired rule set from one version to the
 * next, kept so that a daemon holding version N of its set is sent the
 * changes since N (`patch-rules`, control/rule-patch.ts) instead of the
 * whole set: at 1,000 hosts / 10,000 VMs a spoke's set is ~10,000 rules
 * (~1 MB of JSON), and one VM moving changes one rule of it.
 *
 *   version bumped with its changes known (the cache's patch of the set
 *   the stored version had)  ─▶ appended: {from: N, to: N+1, changes}
 *   bumped otherwise (a set rebuilt, a daemon ahead, a new leader)
 *                            ─▶ the host's journal forgotten: whole sets
 *                               until it grows again
 *   patch(host, N, N+k)      ─▶ the entries N → N+k merged (last change of
 *                               each id wins), or none if one is missing or
 *                               the merge is past `maxRules`
 *
 * Bounded: past `maxRules` changes in all, a host's oldest entries go (a
 * daemon that far behind gets the whole set); entries up to the version a
 * connected daemon holds go as it acknowledges them (`prune`), so a
 * converged deployment keeps none — the bound is for daemons away, each
 * change of every VM being one rule on every host.
 */

/** A rule set's changes: a rule put under its id, or the id removed (null). */
export type RuleChangeMap = ReadonlyMap<string, RuleSpec | null>;

export interface RulePatch {
  remove: string[];
  upsert: RuleSpec[];
}

interface Entry {
  from: number;
  to: number;
  changes: RuleChangeMap;
}

/** The most rule changes a host's journal keeps (a patch is never larger): ~50 KB of JSON, against ~1 MB for a 10,000-rule set. */
export const DEFAULT_MAX_PATCH_RULES = 512;

export class RulePatchJournal {
  readonly #hosts = new Map<string, Entry[]>();
  readonly #maxRules: number;

  constructor(maxRules = DEFAULT_MAX_PATCH_RULES) {
    this.#maxRules = maxRules;
  }

  /** Version `to` of a host's set is version `from` with `changes` (undefined: not known, the journal starts again). */
  record(host: string, from: number, to: number, changes: RuleChangeMap | undefined): void {
    if (changes === undefined || changes.size > this.#maxRules || from <= 0) {
      this.#hosts.delete(host);
      return;
    }
    let entries = this.#hosts.get(host);
    if (entries === undefined || entries.at(-1)!.to !== from) {
      entries = [];
      this.#hosts.set(host, entries);
    }
    entries.push({ from, to, changes });
    let total = 0;
    for (const e of entries) total += e.changes.size;
    while (total > this.#maxRules) total -= entries.shift()!.changes.size;
  }

  /** The changes from version `from` to `to` of a host's set, merged; undefined when not kept whole. */
  patch(host: string, from: number, to: number): RulePatch | undefined {
    const entries = this.#hosts.get(host);
    if (entries === undefined || from >= to) return undefined;
    const start = entries.findIndex((e) => e.from === from);
    if (start < 0) return undefined;
    const merged = new Map<string, RuleSpec | null>();
    for (let i = start; i < entries.length; i++) {
      const e = entries[i]!;
      for (const [id, rule] of e.changes) merged.set(id, rule);
      if (merged.size > this.#maxRules) return undefined;
      if (e.to === to) {
        const patch: RulePatch = { remove: [], upsert: [] };
        for (const [id, rule] of merged) {
          if (rule === null) patch.remove.push(id);
          else patch.upsert.push({ ...rule });
        }
        return patch;
      }
    }
    return undefined;
  }

  /** A connected daemon holds `version`: the entries up to it are needed no more (a patch starts at the version it holds). */
  prune(host: string, version: number): void {
    const entries = this.#hosts.get(host);
    if (entries === undefined) return;
    let drop = 0;
    while (drop < entries.length && entries[drop]!.to <= version) drop++;
    if (drop === entries.length) this.#hosts.delete(host);
    else if (drop > 0) entries.splice(0, drop);
  }

  /** Forget hosts no longer in the deployment. */
  retain(hosts: ReadonlySet<string> | ReadonlyMap<string, unknown>): void {
    for (const host of this.#hosts.keys()) if (!hosts.has(host)) this.#hosts.delete(host);
  }
}
