import { RuleError } from './errors.ts';
import { compareRules, sameRule, type ForwardingRule, type MacMatch, type RuleOrigin } from './forwarding-rule.ts';
import type { Mac } from '../common/mac.ts';

/**
 * The rules a forwarding table holds, from every origin, kept sorted in the
 * order they are tried (priority descending, then id) and compiled into flat
 * arrays so that a scan on a cache miss costs a few ns per rule.
 *
 * Rule ids are unique across origins. Each origin's rules are replaced as a
 * whole by `replace` (a controller push, a config reload), which validates
 * the whole set before touching anything and reports what changed, so an
 * identical push changes nothing.
 */

export interface RuleChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

const MATCH_ANY = 0;
const MATCH_EQ = 1;
const MATCH_NE = 2;

function matchCode(m: MacMatch): number {
  return m.kind === 'any' ? MATCH_ANY : m.kind === 'eq' ? MATCH_EQ : MATCH_NE;
}

export class RuleSet {
  readonly #byId = new Map<string, ForwardingRule>();
  #sorted: readonly ForwardingRule[] = Object.freeze([]);
  /** Per sorted rule: src match code | dst match code << 2, and the MACs compared. */
  #kinds = new Uint8Array(0);
  #srcs = new Float64Array(0);
  #dsts = new Float64Array(0);

  /** Every rule, in the order they are tried. */
  get sorted(): readonly ForwardingRule[] {
    return this.#sorted;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Replace every rule of `origin`; throws RuleError (changing nothing) if the set is invalid. */
  replace(origin: RuleOrigin, rules: readonly ForwardingRule[]): RuleChanges {
    const incoming = new Map<string, ForwardingRule>();
    for (const r of rules) {
      if (r.origin !== origin) throw new RuleError(`rule ${JSON.stringify(r.id)} has origin ${r.origin}, not ${origin}`);
      if (incoming.has(r.id)) throw new RuleError(`duplicate rule id ${JSON.stringify(r.id)}`);
      const other = this.#byId.get(r.id);
      if (other !== undefined && other.origin !== origin) throw new RuleError(`rule id ${JSON.stringify(r.id)} is already used by a ${other.origin} rule`);
      incoming.set(r.id, r);
    }
    const changes: RuleChanges = { added: [], removed: [], changed: [] };
    for (const [id, old] of this.#byId) {
      if (old.origin === origin && !incoming.has(id)) {
        this.#byId.delete(id);
        changes.removed.push(id);
      }
    }
    for (const [id, r] of incoming) {
      const old = this.#byId.get(id);
      if (old === undefined) changes.added.push(id);
      else if (!sameRule(old, r)) changes.changed.push(id);
      else continue;
      this.#byId.set(id, r);
    }
    if (changes.added.length + changes.removed.length + changes.changed.length > 0) this.#compile();
    return changes;
  }

  /** Add one rule; its id must be new. */
  add(rule: ForwardingRule): void {
    if (this.#byId.has(rule.id)) throw new RuleError(`duplicate rule id ${JSON.stringify(rule.id)}`);
    this.#byId.set(rule.id, rule);
    this.#compile();
  }

  /** Remove one rule; returns whether it existed. */
  remove(id: string): boolean {
    if (!this.#byId.delete(id)) return false;
    this.#compile();
    return true;
  }

  /** Index (into `sorted`) of the first rule at or after `start` matching src and dst, or -1. */
  firstMatch(src: Mac, dst: Mac, start: number): number {
    const kinds = this.#kinds;
    const srcs = this.#srcs;
    const dsts = this.#dsts;
    for (let i = start; i < kinds.length; i++) {
      const k = kinds[i]!;
      const sk = k & 3;
      if (sk !== MATCH_ANY && (srcs[i] === src) !== (sk === MATCH_EQ)) continue;
      const dk = k >> 2;
      if (dk !== MATCH_ANY && (dsts[i] === dst) !== (dk === MATCH_EQ)) continue;
      return i;
    }
    return -1;
  }

  #compile(): void {
    const sorted = [...this.#byId.values()].sort(compareRules);
    this.#kinds = Uint8Array.from(sorted, (r) => matchCode(r.src) | (matchCode(r.dst) << 2));
    this.#srcs = Float64Array.from(sorted, (r) => (r.src.kind === 'any' ? 0 : r.src.mac));
    this.#dsts = Float64Array.from(sorted, (r) => (r.dst.kind === 'any' ? 0 : r.dst.mac));
    this.#sorted = Object.freeze(sorted);
  }
}
