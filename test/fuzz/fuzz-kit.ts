import type { TestContext } from 'node:test';
import { seededRandom, type Random } from '../../src/topology/seeded-random.ts';

/**
 * The fuzz tier's runner. A target turns case number i into an input (from a
 * PRNG seeded by the run's seed, the target's name and i, so any one case
 * can be rebuilt alone) and runs it against the oracle: the decoder returns
 * a valid result or one of the project's typed errors — anything else
 * (another exception, a broken invariant, a hang) is a failure.
 *
 *   VNET_FUZZ_SEED=N     the run's seed (default DEFAULT_SEED; printed)
 *   VNET_FUZZ_COUNT=N    inputs per target (default 100000)
 *   VNET_FUZZ_CASE=I     run case I only, and print its input
 *
 * Every target prints its count, seed, outcome histogram (valid results and
 * error codes, to show the mutations reach past the first check), the
 * slowest case and its duration. Figures are printed, never asserted.
 */

export const DEFAULT_SEED = 0x5eed2026;
export const DEFAULT_COUNT = 100_000;
const MAX_REPORTED_FAILURES = 5;

export interface FuzzTarget<I> {
  readonly name: string;
  /** Builds case i. `rand` is the case's own PRNG. */
  generate(rand: Rand, i: number): I;
  /** Runs one case: returns its outcome label ("ok", an error code…); throws when the oracle is broken. */
  run(input: I): string | Promise<string>;
  /** The input, short, for a failure report (hex or text). */
  show(input: I): string;
}

export interface FuzzReport {
  readonly target: string;
  readonly seed: number;
  readonly count: number;
  readonly ms: number;
  readonly outcomes: ReadonlyMap<string, number>;
  readonly failures: readonly string[];
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative integer`);
  return n;
}

export function fuzzSeed(): number {
  return envInt('VNET_FUZZ_SEED') ?? DEFAULT_SEED;
}

export function fuzzCount(): number {
  return envInt('VNET_FUZZ_COUNT') ?? DEFAULT_COUNT;
}

/** FNV-1a then a murmur finaliser: the seed of one case of one target. */
export function caseSeed(seed: number, target: string, i: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let k = 0; k < target.length; k++) h = Math.imul(h ^ target.charCodeAt(k), 0x01000193);
  h = Math.imul(h ^ i, 0x01000193) ^ Math.imul(i >>> 16, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A case's PRNG with the helpers every generator needs. */
export class Rand {
  readonly #next: Random;
  constructor(seed: number) {
    this.#next = seededRandom(seed);
  }
  float(): number {
    return this.#next();
  }
  /** Uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  /** Uniform in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A size skewed to small values (most inputs short, some long). */
  size(max: number): number {
    return Math.min(max, Math.floor(Math.exp(this.#next() * Math.log(max + 1))) - 1 + this.int(2));
  }
}

/**
 * Run a target over `count` cases (or the one VNET_FUZZ_CASE). Failures are
 * collected (the first few reported with the command that replays them) and
 * the test fails at the end; the summary goes to the test's diagnostics.
 */
export async function fuzz<I>(t: TestContext, target: FuzzTarget<I>, opts: { count?: number } = {}): Promise<FuzzReport> {
  const seed = fuzzSeed();
  const only = envInt('VNET_FUZZ_CASE');
  const count = opts.count ?? fuzzCount();
  const outcomes = new Map<string, number>();
  const failures: string[] = [];
  let failed = 0;
  let slowest = { i: -1, ms: 0 };
  const started = performance.now();
  const first = only ?? 0;
  const end = only !== undefined ? only + 1 : count;
  for (let i = first; i < end; i++) {
    const input = target.generate(new Rand(caseSeed(seed, target.name, i)), i);
    if (only !== undefined) t.diagnostic(`${target.name} case ${i}: ${target.show(input)}`);
    const t0 = performance.now();
    let outcome: string;
    try {
      outcome = await target.run(input);
    } catch (err) {
      failed++;
      outcome = 'FAILED';
      if (failures.length < MAX_REPORTED_FAILURES) {
        failures.push(
          `case ${i}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n  input: ${target.show(input)}\n` +
            `  replay: VNET_FUZZ_SEED=${seed} VNET_FUZZ_CASE=${i} node --import tsx --test <this file>`,
        );
      }
    }
    const ms = performance.now() - t0;
    if (ms > slowest.ms) slowest = { i, ms };
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  const ms = performance.now() - started;
  const n = end - first;
  const top = [...outcomes.entries()].sort((a, b) => b[1] - a[1]);
  const shown = top.slice(0, 8).map(([k, v]) => `${k} ${v}`).join(', ');
  const summary =
    `fuzz ${target.name}: ${n} inputs, seed ${seed}, ${(ms / 1000).toFixed(1)} s (${Math.round(n / (ms / 1000))}/s), ` +
    `${failed} failures; slowest case ${slowest.i} ${slowest.ms.toFixed(1)} ms; outcomes: ${shown}${top.length > 8 ? `, … ${top.length - 8} more` : ''}`;
  t.diagnostic(summary);
  if (failed > 0) throw new Error(`${target.name}: ${failed} of ${n} inputs broke the oracle (seed ${seed}):\n${failures.join('\n')}`);
  return { target: target.name, seed, count: n, ms, outcomes, failures };
}

/** The outcome label of a caught value: the typed error's code, or a failure for anything else. */
export function typedOutcome(err: unknown, isTyped: (err: unknown) => boolean): string {
  if (isTyped(err)) return (err as { code: string }).code;
  throw err instanceof Error ? err : new Error(`threw a non-Error: ${String(err)}`);
}

/** Hex of a buffer for a failure report, cut at `max` bytes. */
export function showBytes(b: Uint8Array, max = 512): string {
  const hex = Buffer.from(b.buffer, b.byteOffset, Math.min(b.byteLength, max)).toString('hex');
  return `${b.byteLength} bytes ${hex}${b.byteLength > max ? '…' : ''}`;
}

/** Text for a failure report, JSON-quoted and cut at `max` characters. */
export function showText(s: string, max = 2000): string {
  return `${s.length} chars ${JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s)}`;
}
