import { z } from 'zod';
import { VnetError } from '../common/errors.ts';
import { RuleSetDigest, ruleLine } from './rule-set-digest.ts';
import { ruleSpecSchema, type RuleSpec } from './rule-spec.ts';

/**
 * Rule-set patches (feature `rule-patches`, control-features.ts): the change
 * from the version of a host's rule set its daemon holds to the controller's
 * desired version, instead of the whole set.
 *
 *   patch-rules {from: N, version: N+k, digest, remove: [ids], upsert: [rules]}
 *
 * The daemon applies it only if it holds exactly version N, all at once, and
 * only if the set it would get has `digest` (rule-set-digest.ts, the same
 * function the controller keeps its sets' digests with); else nothing of it
 * is applied and it nacks with `VNET_ERR_RULES_PATCH_BASE` or
 * `VNET_ERR_RULES_PATCH_DIGEST`, and the controller sends the whole set.
 * Whole sets (`set-rules`) stay the way to converge after restarts, leader
 * changes and unknown bases.
 */

/** The most ids removed plus rules upserted in one patch (the controller sends the whole set past its own, lower, limit). */
export const MAX_PATCH_RULES = 16_384;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const patchRulesSchema = z.strictObject({
  type: z.literal('patch-rules'),
  from: count,
  version: count,
  digest: z.string().regex(/^r\d{1,9}-[0-9a-f]{64}$/, 'a rule-set digest (r<count>-<64 hex digits>)'),
  remove: z.array(z.string().min(1).max(128)).max(MAX_PATCH_RULES),
  upsert: z.array(ruleSpecSchema).max(MAX_PATCH_RULES),
}).superRefine((p, ctx) => {
  if (p.version <= p.from) ctx.addIssue({ code: 'custom', message: `version ${p.version} is not after base ${p.from}` });
  if (p.remove.length + p.upsert.length > MAX_PATCH_RULES) ctx.addIssue({ code: 'custom', message: `${p.remove.length + p.upsert.length} changes exceed the maximum of ${MAX_PATCH_RULES}` });
  const seen = new Set<string>();
  for (const id of [...p.remove, ...p.upsert.map((r) => r.id)]) {
    if (seen.has(id)) {
      ctx.addIssue({ code: 'custom', message: `rule id ${JSON.stringify(id)} appears twice in the patch` });
      return;
    }
    seen.add(id);
  }
});

export type PatchRules = z.output<typeof patchRulesSchema>;

/** A patch for a daemon at another version than its base: nothing applied; the controller sends the whole set. */
export class RulesPatchBaseError extends VnetError {
  constructor(from: number, held: number) {
    super('VNET_ERR_RULES_PATCH_BASE', `rule-set patch from version ${from}, but this daemon holds version ${held}`);
  }
}

/** A patch whose result does not have the digest it announced: nothing applied. */
export class RulesPatchDigestError extends VnetError {
  constructor(expected: string, got: string) {
    super('VNET_ERR_RULES_PATCH_DIGEST', `rule-set patch gives digest ${got}, the controller announced ${expected}`);
  }
}

/** The codes a daemon refuses a patch with: the controller answers with the whole set. */
export const PATCH_REFUSALS: ReadonlySet<string> = new Set(['VNET_ERR_RULES_PATCH_BASE', 'VNET_ERR_RULES_PATCH_DIGEST']);

/**
 * A host's controller rule set as its daemon holds it: the rules by id, its
 * version and its digest, kept rule by rule so that a patch costs its own
 * size plus one copy of the map.
 */
export class HeldRuleSet {
  #version: number;
  #rules: Map<string, RuleSpec>;
  #digest: RuleSetDigest;

  constructor(version = 0, rules: readonly RuleSpec[] = []) {
    this.#version = version;
    this.#rules = new Map(rules.map((r) => [r.id, r] as const));
    this.#digest = new RuleSetDigest();
    for (const r of this.#rules.values()) this.#digest.add(ruleLine(r));
  }

  get version(): number {
    return this.#version;
  }

  digest(): string {
    return this.#digest.hex();
  }

  /** The set, in id order (as a whole set comes). */
  rules(): RuleSpec[] {
    return [...this.#rules.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The set `patch` gives, checked (base, digest), without changing this
   * one; throws RulesPatchBaseError or RulesPatchDigestError. A removed id
   * that is not in the set is no change.
   */
  patched(patch: Pick<PatchRules, 'from' | 'version' | 'digest' | 'remove' | 'upsert'>): HeldRuleSet {
    if (patch.from !== this.#version) throw new RulesPatchBaseError(patch.from, this.#version);
    const rules = new Map(this.#rules);
    const digest = this.#digest.copy();
    for (const id of patch.remove) {
      const old = rules.get(id);
      if (old === undefined) continue;
      digest.remove(ruleLine(old));
      rules.delete(id);
    }
    for (const rule of patch.upsert) {
      const old = rules.get(rule.id);
      if (old !== undefined) digest.remove(ruleLine(old));
      digest.add(ruleLine(rule));
      rules.set(rule.id, rule);
    }
    if (digest.hex() !== patch.digest) throw new RulesPatchDigestError(patch.digest, digest.hex());
    const next = new HeldRuleSet();
    next.#version = patch.version;
    next.#rules = rules;
    next.#digest = digest;
    return next;
  }
}
