import { createHash } from 'node:crypto';
import type { RuleSpec } from './rule-spec.ts';

/**
 * The digest of a host's desired rule set, kept up to date rule by rule.
 *
 * A rule set is a set (ids are unique; a set goes out sorted by id), so its
 * digest is the sum, lane by lane modulo 2^32, of the SHA-256 of each rule's
 * line (`ruleLine`: every field, in a fixed order), with the rule count.
 * Adding or removing one rule costs one hash, whatever the set's size: a VM
 * placed anywhere changes one rule on every host, and the controller's cost
 * for it stays linear in hosts, not hosts × VMs (docs/scale.md). The same
 * set always has the same digest, however it was reached, so the digest
 * computed from scratch (`rulesDigestOf`) and the one maintained by
 * `desired-state-cache.ts` agree, and a new leader finds the stored digests
 * of its predecessor unchanged. It lives in the control layer because the
 * daemon checks a rule-set patch (`patch-rules`) against it: its set after
 * the patch must have the digest the controller computed.
 */

const LANES = 8;

export class RuleSetDigest {
  readonly #lanes = new Uint32Array(LANES);
  #count = 0;

  add(line: string): void {
    this.#fold(line, 1);
    this.#count++;
  }

  remove(line: string): void {
    this.#fold(line, -1);
    this.#count--;
  }

  /** How many rules the set holds. */
  get count(): number {
    return this.#count;
  }

  /** `r<count>-<256 bits as hex>`. */
  hex(): string {
    return `r${this.#count}-${Array.from(this.#lanes, (x) => x.toString(16).padStart(8, '0')).join('')}`;
  }

  copy(): RuleSetDigest {
    const c = new RuleSetDigest();
    c.#lanes.set(this.#lanes);
    c.#count = this.#count;
    return c;
  }

  #fold(line: string, sign: 1 | -1): void {
    const h = lineHash(line);
    for (let i = 0; i < LANES; i++) this.#lanes[i] = (this.#lanes[i]! + sign * h[i]!) >>> 0;
  }
}

/**
 * Hashes of rule lines, remembered: most lines recur on many hosts (a VM's
 * rule is the same on every spoke of a hub), so a VM placed costs one hash,
 * not one per host. Bounded: forgotten whole when full.
 */
const hashes = new Map<string, Uint32Array>();
const MAX_REMEMBERED = 262_144;

function lineHash(line: string): Uint32Array {
  let h = hashes.get(line);
  if (h === undefined) {
    const d = createHash('sha256').update(line).digest();
    h = new Uint32Array(LANES);
    for (let i = 0; i < LANES; i++) h[i] = d.readUInt32BE(i * 4);
    if (hashes.size >= MAX_REMEMBERED) hashes.clear();
    hashes.set(line, h);
  }
  return h;
}

/** One line per rule: every field, in a fixed order (rules are compared and digested by it). */
export function ruleLine(r: RuleSpec): string {
  const a = r.action;
  const action = typeof a === 'string' ? a : 'port' in a ? `port:${a.port}` : `link:${a.link}`;
  return `${r.id}\t${r.priority}\t${r.src}\t${r.dst}\t${action}`;
}

/** The digest of a whole set, from scratch. */
export function rulesDigestOf(rules: readonly RuleSpec[], line: (r: RuleSpec) => string = ruleLine): string {
  const d = new RuleSetDigest();
  for (const r of rules) d.add(line(r));
  return d.hex();
}
