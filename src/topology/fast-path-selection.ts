import type { Mac } from '../common/mac.ts';
import { formatList, formatRate } from './rate-format.ts';
import type { TrafficMatrix } from './traffic-matrix.ts';
import { EdgeList } from './edge-list.ts';
import { remapEdges, type RegistryIndex } from './vm-registry.ts';

/**
 * VADAPT-style fast-path selection. Without fast paths, traffic between VMs
 * on two different non-hub hosts crosses the star backbone twice, through
 * the hub. A direct link between hosts A and B takes off the backbone all
 * the traffic between VMs on A and VMs on B: that sum is the link's benefit.
 * Benefits of different host pairs are independent, so ranking by benefit
 * and taking links greedily while the budget (links per host, links in
 * total) allows is the VADAPT greedy heuristic.
 *
 * Hysteresis: a new link needs a benefit of at least `addThreshold`; an
 * existing link stays while its benefit is at least `keepThreshold` (lower),
 * and in the ranking an existing link's benefit counts `replaceFactor` times,
 * so a new link displaces an existing one under a full budget only if it is
 * clearly better. A benefit wobbling around either threshold therefore never
 * makes a link come and go every period.
 *
 * Output: the desired set of links, what to add and remove (each with a
 * reason), and the complete desired set of fast-path forwarding rules: on
 * each end of a link, for every VM on the peer host that exchanges traffic
 * with a VM of this host, `{ src: 'any', dst: that VM's MAC } → link peer`.
 * The controller reconciles this desired set against what is installed.
 */

export interface HostLink {
  /** The two hosts, a < b. */
  readonly a: string;
  readonly b: string;
}

export interface FastPathBudget {
  readonly maxLinksPerHost: number;
  readonly maxLinksTotal: number;
}

export interface FastPathParams {
  readonly budget: FastPathBudget;
  /** Benefit (bytes/s taken off the backbone) a new link needs. */
  readonly addThresholdBytesPerSecond: number;
  /** Benefit under which an existing link is removed; must not exceed the add threshold. */
  readonly keepThresholdBytesPerSecond: number;
  /** How much more an existing link's benefit weighs in the ranking (default 1.25). */
  readonly replaceFactor?: number;
  /** Priority of fast-path rules (default 100). */
  readonly rulePriority?: number;
}

export interface ForwardingRule {
  readonly host: string;
  readonly priority: number;
  readonly src: Mac | 'any';
  readonly dst: Mac;
  readonly action: { readonly link: string };
}

export interface LinkDecision {
  readonly link: HostLink;
  readonly benefitBytesPerSecond: number;
  /** VM pairs (unordered) that exchange traffic across this host pair. */
  readonly vmPairs: number;
  readonly reason: string;
}

export interface FastPathPlan {
  /** Every fast-path link that should exist (kept and added), sorted. */
  readonly links: readonly HostLink[];
  readonly add: readonly LinkDecision[];
  readonly remove: readonly LinkDecision[];
  readonly keep: readonly LinkDecision[];
  /** Candidates that passed the add threshold but did not fit the budget (strongest 10). */
  readonly notChosen: readonly LinkDecision[];
  /** Desired fast-path rules for every link in `links`, sorted by host, dst. */
  readonly rules: readonly ForwardingRule[];
}

export interface FastPathInput {
  readonly matrix: TrafficMatrix;
  readonly registry: RegistryIndex;
  readonly currentLinks: readonly HostLink[];
  readonly hubHost: string;
  /**
   * VM names by MAC, for the reasons ("between web1,db2"): a VM with a name
   * here is named by it, any other by its registry id (the controller's ids
   * are MACs). Names only: nothing else depends on them.
   */
  readonly vmNames?: ReadonlyMap<Mac, string>;
}

export function hostLink(x: string, y: string): HostLink {
  return x < y ? { a: x, b: y } : { a: y, b: x };
}

interface Candidate {
  readonly a: number;
  readonly b: number;
  benefit: number;
  /** Registry-index pairs (src, dst) carrying traffic, directed; filled only for candidates a decision names. */
  readonly pairs: number[];
}

type PendingDecision = { readonly c: Candidate | undefined; readonly link: HostLink; readonly reason: (rate: string, vms: string) => string };

/** Choose fast-path links and the rules that steer VM pairs onto them. Pure; O(edges + candidates log candidates). */
export function selectFastPaths(input: FastPathInput, params: FastPathParams): FastPathPlan {
  const { registry, hubHost } = input;
  const replaceFactor = params.replaceFactor ?? 1.25;
  const priority = params.rulePriority ?? 100;
  const hostIndex = new Map<string, number>();
  const hostNames: string[] = [];
  const indexOfHost = (h: string): number => {
    let i = hostIndex.get(h);
    if (i === undefined) {
      i = hostNames.length;
      hostIndex.set(h, i);
      hostNames.push(h);
    }
    return i;
  };
  const vmHost = Int32Array.from(registry.hosts, indexOfHost);
  const hub = indexOfHost(hubHost);
  const current: HostLink[] = [];
  for (const l of input.currentLinks) {
    if (l.a === hubHost || l.b === hubHost || l.a === l.b) continue;
    const link = hostLink(l.a, l.b);
    indexOfHost(link.a);
    indexOfHost(link.b);
    current.push(link);
  }
  const stride = hostNames.length;
  const pairKey = (x: number, y: number): number => (x < y ? x * stride + y : y * stride + x);
  const existing = new Set(current.map((l) => pairKey(hostIndex.get(l.a)!, hostIndex.get(l.b)!)));
  // Pass 1: benefit per unordered host pair (VM pairs on the hub or within a host gain nothing).
  const rates = remapEdges(input.matrix.rates, input.matrix.ids, registry, false);
  const n = registry.ids.length;
  const rk = rates.keyArray;
  const rv = rates.valueArray;
  const pairKeys = new Float64Array(rk.length);
  const pairRates = new Float64Array(rk.length);
  const pairEdge = new Int32Array(rk.length);
  let len = 0;
  for (let i = 0; i < rk.length; i++) {
    const hs = vmHost[Math.floor(rk[i]! / n)]!;
    const hd = vmHost[rk[i]! % n]!;
    if (hs === hd || hs === hub || hd === hub || !(rv[i]! > 0)) continue;
    pairKeys[len] = pairKey(hs, hd);
    pairRates[len] = rv[i]!;
    pairEdge[len] = i;
    len++;
  }
  const benefits = EdgeList.fromPairs(pairKeys, pairRates, len);
  // Candidate records only for the host pairs a decision may name.
  const candidates = new Map<number, Candidate>();
  const candidateFor = (ck: number): Candidate | undefined => {
    let c = candidates.get(ck);
    if (c === undefined) {
      const benefit = benefits.get(ck);
      if (benefit === undefined) return undefined;
      c = { a: Math.floor(ck / stride), b: ck % stride, benefit, pairs: [] };
      candidates.set(ck, c);
    }
    return c;
  };
  // Rank: existing links above keep threshold, new ones above add threshold.
  type Ranked = { link: HostLink; c: Candidate; existing: boolean; rank: number };
  const ranked: Ranked[] = [];
  const bk = benefits.keyArray;
  const bv = benefits.valueArray;
  for (let i = 0; i < bk.length; i++) {
    const ck = bk[i]!;
    const benefit = bv[i]!;
    // Under both thresholds no link qualifies, existing or not (skips the set lookup for most pairs).
    if (benefit < params.keepThresholdBytesPerSecond && benefit < params.addThresholdBytesPerSecond) continue;
    const isExisting = existing.has(ck);
    const eligible = isExisting ? benefit >= params.keepThresholdBytesPerSecond : benefit >= params.addThresholdBytesPerSecond;
    if (!eligible) continue;
    const c = candidateFor(ck)!;
    ranked.push({ link: hostLink(hostNames[c.a]!, hostNames[c.b]!), c, existing: isExisting, rank: isExisting ? benefit * replaceFactor : benefit });
  }
  ranked.sort((x, y) => y.rank - x.rank || cmpLink(x.link, y.link));
  const perHost = new Map<string, number>();
  const add: PendingDecision[] = [];
  const keep: PendingDecision[] = [];
  const remove: PendingDecision[] = [];
  const notChosen: PendingDecision[] = [];
  const chosen: { link: HostLink; c: Candidate }[] = [];
  const chosenKeys = new Set<number>();
  const keepTh = formatRate(params.keepThresholdBytesPerSecond);
  for (const r of ranked) {
    const { a, b } = r.link;
    const fullHost = [a, b].find((h) => (perHost.get(h) ?? 0) >= params.budget.maxLinksPerHost);
    const fullTotal = chosen.length >= params.budget.maxLinksTotal;
    if (fullHost !== undefined || fullTotal) {
      const why = fullTotal
        ? `the total budget of ${params.budget.maxLinksTotal} links is taken by larger savers`
        : `${fullHost} already has its budget of ${params.budget.maxLinksPerHost} links to larger savers`;
      if (r.existing) remove.push({ c: r.c, link: r.link, reason: (rate, vms) => `${a}↔${b} (${rate} between ${vms}) removed: ${why}` });
      else if (notChosen.length < 10) notChosen.push({ c: r.c, link: r.link, reason: (rate, vms) => `${a}↔${b} would save ${rate} between ${vms}, but ${why}` });
      continue;
    }
    perHost.set(a, (perHost.get(a) ?? 0) + 1);
    perHost.set(b, (perHost.get(b) ?? 0) + 1);
    chosen.push({ link: r.link, c: r.c });
    chosenKeys.add(pairKey(r.c.a, r.c.b));
    if (r.existing) keep.push({ c: r.c, link: r.link, reason: (rate, vms) => `${a}↔${b} still carries ${rate} between ${vms} (keep threshold ${keepTh})` });
    else add.push({ c: r.c, link: r.link, reason: (rate, vms) => `${a}↔${b} carries ${rate} between ${vms} through the hub` });
  }
  // Existing links neither chosen nor displaced: their benefit fell under the keep threshold.
  const removedKeys = new Set(remove.map((d) => pairKey(d.c!.a, d.c!.b)));
  for (const link of current) {
    const ck = pairKey(hostIndex.get(link.a)!, hostIndex.get(link.b)!);
    if (chosenKeys.has(ck) || removedKeys.has(ck)) continue;
    removedKeys.add(ck);
    remove.push({ c: candidateFor(ck), link, reason: (rate) => `${link.a}↔${link.b} carries only ${rate}, below the keep threshold ${keepTh}` });
  }
  // Pass 2: the VM pairs of the host pairs that a decision names (for reasons and rules).
  const named = new Set<Candidate>();
  for (const d of [...add, ...keep, ...remove, ...notChosen]) if (d.c !== undefined) named.add(d.c);
  // The host pairs of pass 1 (hub and same-host pairs already left out; no
  // candidate has them) are looked up in an open-addressing table of the
  // named candidates' keys.
  if (named.size > 0) {
    let size = 16;
    while (size < 2 * named.size) size *= 2;
    const mask = size - 1;
    const slotKey = new Float64Array(size).fill(-1);
    const slotCandidate: Candidate[] = new Array<Candidate>(size);
    for (const c of named) {
      const ck = pairKey(c.a, c.b);
      let h = keyHash(ck) & mask;
      while (slotKey[h] !== -1) h = (h + 1) & mask;
      slotKey[h] = ck;
      slotCandidate[h] = c;
    }
    for (let j = 0; j < len; j++) {
      const ck = pairKeys[j]!;
      let h = keyHash(ck) & mask;
      for (;;) {
        const k = slotKey[h]!;
        if (k === -1) break;
        if (k === ck) {
          const i = pairEdge[j]!;
          slotCandidate[h]!.pairs.push(Math.floor(rk[i]! / n), rk[i]! % n);
          break;
        }
        h = (h + 1) & mask;
      }
    }
  }
  const decide = (p: PendingDecision): LinkDecision => {
    const c = p.c;
    const benefit = c?.benefit ?? 0;
    // A reason names the first VMs (by index) and how many more: only those are picked out, not all sorted.
    const distinct = new Set(c?.pairs ?? []);
    const vms = smallestOf(distinct, LISTED_VMS).map((v) => input.vmNames?.get(registry.macs[v]!) ?? registry.ids[v]!);
    return {
      link: p.link,
      benefitBytesPerSecond: benefit,
      vmPairs: c === undefined ? 0 : countUnorderedPairs(c.pairs, n),
      reason: p.reason(formatRate(benefit), formatList(vms, LISTED_VMS, distinct.size)),
    };
  };
  const byLink = (x: LinkDecision, y: LinkDecision): number => cmpLink(x.link, y.link);
  return {
    links: chosen.map((c) => c.link).sort(cmpLink),
    add: add.map(decide).sort(byLink),
    remove: remove.map(decide).sort(byLink),
    keep: keep.map(decide).sort(byLink),
    notChosen: notChosen.map(decide),
    rules: rulesFor(chosen, registry, priority),
  };
}

/** VMs a decision's reason names before "and N more". */
const LISTED_VMS = 3;

/** The `count` smallest of `values`, ascending. O(values · count). */
function smallestOf(values: Iterable<number>, count: number): number[] {
  const out: number[] = [];
  for (const v of values) {
    if (out.length === count && !(v < out[count - 1]!)) continue;
    let at = out.length < count ? out.length : count - 1;
    while (at > 0 && out[at - 1]! > v) {
      out[at] = out[at - 1]!;
      at--;
    }
    out[at] = v;
  }
  return out;
}

/** 30-bit hash of a non-negative integer key below 2^53. */
function keyHash(key: number): number {
  const h = Math.imul((key >>> 0) ^ ((key / 0x1_0000_0000) | 0), 0x9e3779b1);
  return (h ^ (h >>> 15)) & 0x3fff_ffff;
}

function countUnorderedPairs(pairs: readonly number[], n: number): number {
  const seen = new Set<number>();
  for (let i = 0; i < pairs.length; i += 2) {
    const x = pairs[i]!;
    const y = pairs[i + 1]!;
    seen.add(x < y ? x * n + y : y * n + x);
  }
  return seen.size;
}

export function cmpLink(x: HostLink, y: HostLink): number {
  return x.a < y.a ? -1 : x.a > y.a ? 1 : x.b < y.b ? -1 : x.b > y.b ? 1 : 0;
}

function rulesFor(chosen: readonly { link: HostLink; c: Candidate }[], registry: RegistryIndex, priority: number): ForwardingRule[] {
  const byHost = new Map<string, ForwardingRule[]>();
  for (const { c } of chosen) {
    const seen = new Set<number>(); // destination VM indices already steered (per link; a VM is on one host)
    for (let i = 0; i < c.pairs.length; i += 2) {
      // Both directions of every VM pair with traffic: frames to y leave x's host on the link, and back.
      for (let side = 0; side < 2; side++) {
        const from = c.pairs[i + side]!;
        const to = c.pairs[i + 1 - side]!;
        if (seen.has(to)) continue;
        seen.add(to);
        const host = registry.hosts[from]!;
        let list = byHost.get(host);
        if (list === undefined) byHost.set(host, (list = []));
        list.push({ host, priority, src: 'any', dst: registry.macs[to]!, action: { link: registry.hosts[to]! } });
      }
    }
  }
  const rules: ForwardingRule[] = [];
  for (const host of [...byHost.keys()].sort()) for (const r of byHost.get(host)!.sort((x, y) => x.dst - y.dst)) rules.push(r);
  return rules;
}
