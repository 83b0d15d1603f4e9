import type { Mac } from '../dataplane/mac.ts';
import { formatList, formatRate } from './rate-format.ts';
import type { TrafficMatrix } from './traffic-matrix.ts';
import { keyDst, keySrc, remapEdges, type RegistryIndex } from './vm-registry.ts';

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
}

export function hostLink(x: string, y: string): HostLink {
  return x < y ? { a: x, b: y } : { a: y, b: x };
}

interface Candidate {
  readonly a: number;
  readonly b: number;
  benefit: number;
  /** Registry-index pairs (src, dst) carrying traffic, directed. */
  readonly pairs: number[];
  readonly vms: Set<number>;
}

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
  const vmHost = registry.hosts.map(indexOfHost);
  const hub = indexOfHost(hubHost);
  const existing = new Set<string>();
  for (const l of input.currentLinks) {
    if (l.a === hubHost || l.b === hubHost || l.a === l.b) continue;
    const n = hostLink(l.a, l.b);
    existing.add(`${n.a}\u0000${n.b}`);
  }
  // Benefit per unordered host pair.
  const rates = remapEdges(input.matrix.rates, input.matrix.ids, registry, false);
  const candidates = new Map<number, Candidate>();
  const stride = hostNames.length + input.currentLinks.length * 2 + 1;
  for (const [key, rate] of rates) {
    const s = keySrc(key);
    const d = keyDst(key);
    const hs = vmHost[s]!;
    const hd = vmHost[d]!;
    if (hs === hd || hs === hub || hd === hub || !(rate > 0)) continue;
    const a = Math.min(hs, hd);
    const b = Math.max(hs, hd);
    const ck = a * stride + b;
    let c = candidates.get(ck);
    if (c === undefined) {
      c = { a, b, benefit: 0, pairs: [], vms: new Set() };
      candidates.set(ck, c);
    }
    c.benefit += rate;
    c.pairs.push(s, d);
    c.vms.add(s);
    c.vms.add(d);
  }
  const decisionFor = (c: Candidate | undefined, link: HostLink, reason: (benefit: string, pairs: string) => string): LinkDecision => {
    const benefit = c?.benefit ?? 0;
    const vmIds = c === undefined ? [] : [...c.vms].sort((x, y) => x - y).map((v) => registry.ids[v]!);
    const pairCount = c === undefined ? 0 : countUnorderedPairs(c.pairs);
    return { link, benefitBytesPerSecond: benefit, vmPairs: pairCount, reason: reason(formatRate(benefit), formatList(vmIds)) };
  };
  // Rank: existing links above keep threshold, new ones above add threshold.
  type Ranked = { link: HostLink; c: Candidate | undefined; existing: boolean; rank: number };
  const ranked: Ranked[] = [];
  for (const c of candidates.values()) {
    const link = hostLink(hostNames[c.a]!, hostNames[c.b]!);
    const id = `${link.a}\u0000${link.b}`;
    const isExisting = existing.has(id);
    const eligible = isExisting ? c.benefit >= params.keepThresholdBytesPerSecond : c.benefit >= params.addThresholdBytesPerSecond;
    if (eligible) ranked.push({ link, c, existing: isExisting, rank: isExisting ? c.benefit * replaceFactor : c.benefit });
  }
  ranked.sort((x, y) => y.rank - x.rank || cmpLink(x.link, y.link));
  const perHost = new Map<string, number>();
  const add: LinkDecision[] = [];
  const keep: LinkDecision[] = [];
  const remove: LinkDecision[] = [];
  const notChosen: LinkDecision[] = [];
  const chosen: { link: HostLink; c: Candidate }[] = [];
  const keepTh = formatRate(params.keepThresholdBytesPerSecond);
  for (const r of ranked) {
    const { a, b } = r.link;
    const fullHost = [a, b].find((h) => (perHost.get(h) ?? 0) >= params.budget.maxLinksPerHost);
    const fullTotal = chosen.length >= params.budget.maxLinksTotal;
    if (fullHost !== undefined || fullTotal) {
      const why = fullTotal
        ? `the total budget of ${params.budget.maxLinksTotal} links is taken by larger savers`
        : `${fullHost} already has its budget of ${params.budget.maxLinksPerHost} links to larger savers`;
      if (r.existing) remove.push(decisionFor(r.c, r.link, (rate, vms) => `${a}↔${b} (${rate} between ${vms}) removed: ${why}`));
      else if (notChosen.length < 10) notChosen.push(decisionFor(r.c, r.link, (rate, vms) => `${a}↔${b} would save ${rate} between ${vms}, but ${why}`));
      continue;
    }
    perHost.set(a, (perHost.get(a) ?? 0) + 1);
    perHost.set(b, (perHost.get(b) ?? 0) + 1);
    chosen.push({ link: r.link, c: r.c! });
    if (r.existing) keep.push(decisionFor(r.c, r.link, (rate, vms) => `${a}↔${b} still carries ${rate} between ${vms} (keep threshold ${keepTh})`));
    else add.push(decisionFor(r.c, r.link, (rate, vms) => `${a}↔${b} carries ${rate} between ${vms} through the hub`));
  }
  // Existing links that were not eligible: benefit fell under the keep threshold.
  for (const l of input.currentLinks) {
    if (l.a === hubHost || l.b === hubHost || l.a === l.b) continue;
    const link = hostLink(l.a, l.b);
    if (chosen.some((c) => cmpLink(c.link, link) === 0) || remove.some((d) => cmpLink(d.link, link) === 0)) continue;
    const ia = hostIndex.get(link.a);
    const ib = hostIndex.get(link.b);
    const c = ia === undefined || ib === undefined ? undefined : candidates.get(Math.min(ia, ib) * stride + Math.max(ia, ib));
    remove.push(decisionFor(c, link, (rate) => `${link.a}↔${link.b} carries only ${rate}, below the keep threshold ${keepTh}`));
  }
  return {
    links: chosen.map((c) => c.link).sort(cmpLink),
    add: add.sort((x, y) => cmpLink(x.link, y.link)),
    remove: dedupe(remove).sort((x, y) => cmpLink(x.link, y.link)),
    keep: keep.sort((x, y) => cmpLink(x.link, y.link)),
    notChosen,
    rules: rulesFor(chosen, registry, priority),
  };
}

function countUnorderedPairs(pairs: readonly number[]): number {
  const seen = new Set<string>();
  for (let i = 0; i < pairs.length; i += 2) {
    const x = pairs[i]!;
    const y = pairs[i + 1]!;
    seen.add(x < y ? `${x},${y}` : `${y},${x}`);
  }
  return seen.size;
}

function dedupe(ds: LinkDecision[]): LinkDecision[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const id = `${d.link.a}\u0000${d.link.b}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

export function cmpLink(x: HostLink, y: HostLink): number {
  return x.a < y.a ? -1 : x.a > y.a ? 1 : x.b < y.b ? -1 : x.b > y.b ? 1 : 0;
}

function rulesFor(chosen: readonly { link: HostLink; c: Candidate }[], registry: RegistryIndex, priority: number): ForwardingRule[] {
  const rules: ForwardingRule[] = [];
  for (const { c } of chosen) {
    const seen = new Set<number>(); // destination VM indices already steered (per link; a VM is on one host)
    for (let i = 0; i < c.pairs.length; i += 2) {
      // Both directions of every VM pair with traffic: frames to y leave x's host on the link, and back.
      for (const [from, to] of [[c.pairs[i]!, c.pairs[i + 1]!], [c.pairs[i + 1]!, c.pairs[i]!]] as const) {
        if (seen.has(to)) continue;
        seen.add(to);
        rules.push({ host: registry.hosts[from]!, priority, src: 'any', dst: registry.macs[to]!, action: { link: registry.hosts[to]! } });
      }
    }
  }
  return rules.sort((x, y) => (x.host < y.host ? -1 : x.host > y.host ? 1 : x.dst - y.dst));
}
