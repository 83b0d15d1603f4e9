import {
  bfsDistances,
  buildGraph,
  componentCount,
  minDegreeVertices,
  neighbours,
  pathOrder,
  type UndirectedGraph,
} from './graph-structure.ts';
import { EdgeList } from './edge-list.ts';
import type { WeightedGraph } from './normalise.ts';
import { keyDst, keySrc, undirectedKey } from './vm-registry.ts';

/**
 * Classification of the pruned, undirected communication graph (only the
 * VMs with at least one edge take part). For each class the best-fitting
 * ideal graph on the same vertices is found *by structure* — degrees,
 * distances, common neighbours — never by VM numbering, and the class's
 * confidence is the Jaccard similarity |E ∩ I| / |E ∪ I| between the
 * observed edge set E and that ideal I. The class of highest confidence
 * wins (ties go to the more specific class, in CLASS_PRECEDENCE order); under
 * `minConfidence` the graph is `irregular` and its strongest edges listed.
 *
 * Classes (n communicating VMs):
 *   all-to-all  the complete graph K_n
 *   ring        a Hamiltonian cycle (n ≥ 4)
 *   bus         a Hamiltonian path, the "line" (n ≥ 3)
 *   star        one centre joined to every other VM (n ≥ 4; the centre is named)
 *   mesh        a 2-D grid r × c, 2 ≤ r ≤ c, r·c = n, without wrap-around
 *   tree        a spanning tree of maximum degree 3 (a binary tree: root
 *               degree ≤ 2, every other node one parent and ≤ 2 children)
 *   neighbour   neighbour exchange of width k ≥ 2: the VMs on a ring, each
 *               exchanging with its k nearest on either side (the circulant
 *               graph C_n(1..k), degree 2k, 2k + 1 < n). k = 1 is the ring.
 * Ideals are found by: complete graph (exact); centre = highest degree;
 * ring/bus order by a Warnsdorff walk from the lowest-degree vertices; grid
 * coordinates from BFS distances to two corners; the neighbour ring order
 * from the edges whose endpoints share the most neighbours (2k − 2 in
 * C_n(1..k)); tree by a degree-capped BFS spanning forest. The heuristics
 * give the exact ideal whenever the graph is exactly of the class, and a
 * lower bound of the best Jaccard otherwise.
 *
 * Cost: O(n + m) per class, except neighbour (O(Σ deg²)). Cheap upper
 * bounds on each class's Jaccard (from edge counts and degrees) skip the
 * classes that cannot win, and graphs above `maxEdges` are declared
 * irregular without analysis, so a huge random graph costs O(n + m).
 */

export type TopologyClass = 'none' | 'all-to-all' | 'ring' | 'bus' | 'star' | 'mesh' | 'tree' | 'neighbour' | 'irregular';
type FittedClass = Exclude<TopologyClass, 'none' | 'irregular'>;

export const CLASS_PRECEDENCE: readonly FittedClass[] = ['all-to-all', 'ring', 'bus', 'star', 'mesh', 'neighbour', 'tree'];

export interface ClassifyParams {
  /** Below this best confidence the graph is irregular (default 0.75). */
  readonly minConfidence?: number;
  /** Graphs with more edges are irregular without analysis (default 1,000,000). */
  readonly maxEdges?: number;
  /** At most this many edges are listed for an irregular graph, strongest first (default 1,000). */
  readonly maxListedEdges?: number;
}

export interface TopologyEdge {
  readonly a: string;
  readonly b: string;
  readonly weight: number;
}

export interface Topology {
  readonly class: TopologyClass;
  /** Jaccard similarity with the best ideal of the class; for irregular, 1 − the best class's. */
  readonly confidence: number;
  /** The communicating VMs (ids, registry order). */
  readonly vms: readonly string[];
  readonly edgeCount: number;
  readonly components: number;
  /** Hash of the pruned edge set over VM ids (order-independent): equal graphs, equal fingerprints. */
  readonly fingerprint: string;
  /** star: the centre VM. */
  readonly centre?: string;
  /** mesh: grid dimensions. */
  readonly rows?: number;
  readonly cols?: number;
  /** neighbour: exchange width. */
  readonly k?: number;
  /** ring, bus, neighbour: the VMs in the order the class lays them out. */
  readonly order?: readonly string[];
  /** irregular: the strongest edges (at most maxListedEdges) and how many were left off. */
  readonly edges?: readonly TopologyEdge[];
  readonly edgesLeftOff?: number;
  /** irregular: the class that fitted best, and how well. */
  readonly bestGuess?: { readonly class: FittedClass; readonly confidence: number };
}

interface Fit {
  readonly cls: FittedClass;
  readonly confidence: number;
  readonly centre?: number;
  readonly rows?: number;
  readonly cols?: number;
  readonly k?: number;
  readonly order?: Int32Array;
}

const DEFAULT_MIN_CONFIDENCE = 0.75;

function jaccard(inter: number, observed: number, ideal: number): number {
  const union = observed + ideal - inter;
  return union === 0 ? 0 : inter / union;
}

/** Upper bound of the Jaccard with any ideal of `idealEdges` edges whose vertices have degree ≤ degCap. */
const cappedDegreeSums = new WeakMap<UndirectedGraph, Map<number, number>>();

function boundFor(g: UndirectedGraph, idealEdges: number, degCap: number): number {
  let sums = cappedDegreeSums.get(g);
  if (sums === undefined) cappedDegreeSums.set(g, (sums = new Map()));
  let capped = sums.get(degCap);
  if (capped === undefined) {
    capped = 0;
    for (let v = 0; v < g.n; v++) capped += Math.min(g.degree[v]!, degCap);
    sums.set(degCap, capped);
  }
  const inter = Math.min(idealEdges, g.m, Math.floor(capped / 2));
  return jaccard(inter, g.m, idealEdges);
}

function orderEdgesPresent(g: UndirectedGraph, order: Int32Array, span: number, wrap: boolean): number {
  const n = order.length;
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= span; d++) {
      const j = i + d;
      if (j >= n && !wrap) break;
      if (g.has(order[i]!, order[j % n]!)) count++;
    }
  }
  return count;
}

/** Orders of at most this many vertices are improved by pairwise swaps (O(n³·span) at worst, bounded passes). */
const LOCAL_SEARCH_MAX_N = 64;

/**
 * Swap pairs of positions while that puts more of the graph's edges between
 * order-neighbours (within `span`). Repairs the greedy orders when a few
 * extra (noise) edges misled them; only for small graphs.
 */
function improveOrder(g: UndirectedGraph, order: Int32Array, span: number, wrap: boolean): Int32Array {
  const n = order.length;
  if (n > LOCAL_SEARCH_MAX_N) return order;
  const cur = Int32Array.from(order);
  let score = orderEdgesPresent(g, cur, span, wrap);
  for (let pass = 0; pass < 8; pass++) {
    let improved = false;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const t = cur[i]!;
        cur[i] = cur[j]!;
        cur[j] = t;
        const next = orderEdgesPresent(g, cur, span, wrap);
        if (next > score) {
          score = next;
          improved = true;
        } else {
          cur[j] = cur[i]!;
          cur[i] = t;
        }
      }
    }
    if (!improved) break;
  }
  return cur;
}

function fitRingAndBus(g: UndirectedGraph): Fit[] {
  let bestRing: Fit | undefined;
  let bestBus: Fit | undefined;
  for (const start of minDegreeVertices(g, 3)) {
    const walked = pathOrder(g, start);
    const ringDone = g.n >= 4 && orderEdgesPresent(g, walked, 1, true) === g.n;
    const order = ringDone ? walked : improveOrder(g, walked, 1, false);
    const pathInter = orderEdgesPresent(g, order, 1, false);
    const closing = g.has(order[0]!, order[g.n - 1]!) ? 1 : 0;
    const ring = jaccard(pathInter + closing, g.m, g.n);
    const bus = jaccard(pathInter, g.m, g.n - 1);
    if (g.n >= 4 && (bestRing === undefined || ring > bestRing.confidence)) bestRing = { cls: 'ring', confidence: ring, order };
    if (g.n >= 3 && (bestBus === undefined || bus > bestBus.confidence)) bestBus = { cls: 'bus', confidence: bus, order };
  }
  return [bestRing, bestBus].filter((f): f is Fit => f !== undefined);
}

function fitStar(g: UndirectedGraph): Fit | undefined {
  if (g.n < 4) return undefined;
  let centre = 0;
  for (let v = 1; v < g.n; v++) if (g.degree[v]! > g.degree[centre]!) centre = v;
  return { cls: 'star', confidence: jaccard(g.degree[centre]!, g.m, g.n - 1), centre };
}

function gridEdges(rows: number, cols: number): number {
  return rows * (cols - 1) + cols * (rows - 1);
}

/** Place every vertex on a rows×cols grid from its distances to corner a (0,0) and corner b (cols−1,0). */
function embedGrid(g: UndirectedGraph, da: Int32Array, db: Int32Array, rows: number, cols: number): number {
  const cell = new Int32Array(rows * cols).fill(-1);
  for (let v = 0; v < g.n; v++) {
    const twiceX = da[v]! - db[v]! + cols - 1;
    if (da[v]! < 0 || db[v]! < 0 || twiceX % 2 !== 0) return -1;
    const x = twiceX / 2;
    const y = da[v]! - x;
    if (x < 0 || x >= cols || y < 0 || y >= rows || cell[y * cols + x] !== -1) return -1;
    cell[y * cols + x] = v;
  }
  let inter = 0;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const v = cell[y * cols + x]!;
      if (x + 1 < cols && g.has(v, cell[y * cols + x + 1]!)) inter++;
      if (y + 1 < rows && g.has(v, cell[(y + 1) * cols + x]!)) inter++;
    }
  }
  return inter;
}

function fitMesh(g: UndirectedGraph, minConfidence: number): Fit | undefined {
  let best: Fit | undefined;
  let cornerCache: number[] | undefined;
  const cornerList = (): number[] => (cornerCache ??= minDegreeVertices(g, 4));
  const dist = new Map<number, Int32Array>();
  const distFrom = (v: number): Int32Array => {
    let d = dist.get(v);
    if (d === undefined) {
      d = bfsDistances(g, v);
      dist.set(v, d);
    }
    return d;
  };
  for (let rows = 2; rows * rows <= g.n; rows++) {
    if (g.n % rows !== 0) continue;
    const cols = g.n / rows;
    const ideal = gridEdges(rows, cols);
    if (boundFor(g, ideal, 4) < Math.max(minConfidence, best?.confidence ?? 0)) continue;
    for (const [r, c] of [[rows, cols], [cols, rows]] as const) {
      const corners = cornerList();
      for (const a of corners) {
        const da = distFrom(a);
        const b = corners.find((v) => v !== a && da[v] === c - 1);
        if (b === undefined) continue;
        const inter = embedGrid(g, da, distFrom(b), r, c);
        if (inter < 0) continue;
        const confidence = jaccard(inter, g.m, ideal);
        if (best === undefined || confidence > best.confidence) {
          best = { cls: 'mesh', confidence, rows: Math.min(r, c), cols: Math.max(r, c) };
        }
      }
      if (rows === cols) break;
    }
  }
  return best;
}

function fitNeighbour(g: UndirectedGraph, minConfidence: number, maxWork: number): Fit | undefined {
  const degrees = Int32Array.from(g.degree).sort();
  const k = Math.round(degrees[degrees.length >> 1]! / 2);
  if (k < 2 || 2 * k + 1 >= g.n) return undefined;
  if (boundFor(g, g.n * k, 2 * k) < minConfidence) return undefined;
  let work = 0;
  for (let v = 0; v < g.n; v++) work += g.degree[v]! * g.degree[v]!;
  if (work > maxWork) return undefined;
  // Cheap necessary condition on a sample first: in C_n(1..k) every vertex has two
  // edges whose ends share 2k − 2 neighbours (allow one less for noise). Random
  // graphs have almost no common neighbours and stop here.
  const samples = Math.min(g.n, 256);
  let fitting = 0;
  for (let i = 0; i < samples; i++) {
    const u = Math.floor((i * g.n) / samples);
    const nu = neighbours(g, u);
    let strong = 0;
    for (const v of nu) {
      let c = 0;
      for (const w of nu) if (w !== v && g.has(v, w)) c++;
      if (c >= 2 * k - 3 && ++strong >= 2) break;
    }
    if (strong >= 2) fitting++;
    // Stop as soon as the remaining samples cannot reach half.
    if (fitting + (samples - 1 - i) < samples * 0.5) break;
  }
  if (fitting < samples * 0.5) return undefined;
  // In C_n(1..k), adjacent-on-the-ring vertices share 2k − 2 neighbours, all other edges fewer.
  const common = new Map<number, number>();
  for (let u = 0; u < g.n; u++) {
    const nu = neighbours(g, u);
    for (const v of nu) {
      if (v <= u) continue;
      let c = 0;
      for (const w of nu) if (w !== v && g.has(v, w)) c++;
      common.set(undirectedKey(u, v, g.n), c);
    }
  }
  // Candidate ring edges two ways: every edge sharing ≥ 2k − 2 neighbours, and
  // each vertex's two edges sharing the most (kept when both ends pick them),
  // which survives a few extra (noise) edges.
  const byCount = [...common].filter(([, c]) => c >= 2 * k - 2).map(([key]) => key);
  const picks = new Map<number, number>();
  for (let u = 0; u < g.n; u++) {
    const ranked = Array.from(neighbours(g, u)).sort(
      (a, b) => common.get(undirectedKey(u, b, g.n))! - common.get(undirectedKey(u, a, g.n))! || a - b,
    );
    for (const v of ranked.slice(0, 2)) {
      const key = undirectedKey(u, v, g.n);
      picks.set(key, (picks.get(key) ?? 0) + 1);
    }
  }
  const mutual = [...picks].filter(([, c]) => c === 2).map(([key]) => key);
  let best: Fit | undefined;
  for (const keys of [byCount, mutual]) {
    const sub = buildGraph(keys, g.n);
    if (sub.n < 3) continue;
    for (const start of minDegreeVertices(sub, 2)) {
      const subOrder = pathOrder(sub, start);
      // Sub-graph vertices → g's vertices, then any vertex the sub-graph missed.
      const order = new Int32Array(g.n);
      const placed = new Uint8Array(g.n);
      let len = 0;
      for (const x of subOrder) {
        const v = sub.vms[x]!;
        order[len++] = v;
        placed[v] = 1;
      }
      for (let v = 0; v < g.n; v++) if (placed[v] === 0) order[len++] = v;
      const inter = orderEdgesPresent(g, order, k, true);
      const improved = inter === g.n * k ? order : improveOrder(g, order, k, true);
      const confidence = jaccard(orderEdgesPresent(g, improved, k, true), g.m, g.n * k);
      if (best === undefined || confidence > best.confidence) best = { cls: 'neighbour', confidence, k, order: improved };
    }
  }
  return best;
}

function fitTree(g: UndirectedGraph): Fit {
  const treeDegree = new Int32Array(g.n);
  const seen = new Uint8Array(g.n);
  const queue = new Int32Array(g.n);
  let edges = 0;
  for (let root = 0; root < g.n; root++) {
    if (seen[root] === 1) continue;
    let head = 0;
    let tail = 0;
    seen[root] = 1;
    queue[tail++] = root;
    while (head < tail) {
      const v = queue[head++]!;
      for (const u of neighbours(g, v)) {
        if (seen[u] === 1 || treeDegree[v]! >= 3) continue;
        seen[u] = 1;
        treeDegree[v]!++;
        treeDegree[u]!++;
        edges++;
        queue[tail++] = u;
      }
    }
  }
  return { cls: 'tree', confidence: jaccard(edges, g.m, g.n - 1) };
}

function fitAll(g: UndirectedGraph, minConfidence: number, maxEdges: number): Fit[] {
  const fits: Fit[] = [{ cls: 'all-to-all', confidence: jaccard(g.m, g.m, (g.n * (g.n - 1)) / 2) }];
  const star = fitStar(g);
  if (star !== undefined) fits.push(star);
  if (g.m > maxEdges) return fits;
  const worthIt = (bound: number): boolean => bound >= minConfidence && bound > Math.max(...fits.map((f) => f.confidence));
  if (worthIt(boundFor(g, g.n, 2))) fits.push(...fitRingAndBus(g));
  const mesh = g.n >= 4 ? fitMesh(g, minConfidence) : undefined;
  if (mesh !== undefined) fits.push(mesh);
  const neighbour = fitNeighbour(g, minConfidence, 20 * maxEdges);
  if (neighbour !== undefined) fits.push(neighbour);
  if (worthIt(boundFor(g, g.n - 1, 3))) fits.push(fitTree(g));
  return fits;
}

function best(fits: readonly Fit[]): Fit {
  let winner = fits[0]!;
  for (const f of fits) {
    const better = f.confidence > winner.confidence + 1e-9;
    const tie = Math.abs(f.confidence - winner.confidence) <= 1e-9;
    if (better || (tie && CLASS_PRECEDENCE.indexOf(f.cls) < CLASS_PRECEDENCE.indexOf(winner.cls))) winner = f;
  }
  return winner;
}

function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Order-independent hash of the edge set, over VM ids (not indices), as 8 hex digits. */
function fingerprintOf(g: UndirectedGraph, ids: readonly string[]): string {
  const vh = Array.from(g.vms, (i) => hashString(ids[i]!));
  let sum = g.m >>> 0;
  for (let a = 0; a < g.n; a++) {
    for (const b of neighbours(g, a)) {
      if (b <= a) continue;
      const x = Math.min(vh[a]!, vh[b]!);
      const y = Math.max(vh[a]!, vh[b]!);
      let h = Math.imul(x ^ 0x9e3779b9, 0x85ebca6b) ^ y;
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      sum = (sum + (h ^ (h >>> 16))) >>> 0;
    }
  }
  return sum.toString(16).padStart(8, '0');
}

/**
 * The value at position k of `xs` sorted ascending (as Float64Array#sort would
 * put it), by quickselect: O(m) expected instead of a full sort. Reorders xs.
 * With a NaN present (never in weights, but this is a pure function) it sorts.
 */
function kthSmallest(xs: Float64Array, k: number): number {
  for (let i = 0; i < xs.length; i++) if (xs[i] !== xs[i]) return xs.sort()[k]!;
  let lo = 0;
  let hi = xs.length - 1;
  while (hi > lo) {
    const pivot = xs[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (xs[i]! < pivot) i++;
      while (xs[j]! > pivot) j--;
      if (i <= j) {
        const t = xs[i]!;
        xs[i++] = xs[j]!;
        xs[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return xs[k]!;
  }
  return xs[k]!;
}

/** The `count` strongest edges, strongest first (ties by key); O(m) plus a sort of the kept ones. */
function strongest(weights: EdgeList, count: number): [number, number][] {
  let threshold = Number.NEGATIVE_INFINITY;
  if (weights.size > count && count > 0) {
    threshold = kthSmallest(Float64Array.from(weights.valueArray), weights.size - count);
  }
  const kept: [number, number][] = [];
  const keys = weights.keyArray;
  const values = weights.valueArray;
  for (let i = 0; i < keys.length; i++) if (values[i]! >= threshold) kept.push([keys[i]!, values[i]!]);
  kept.sort((x, y) => y[1] - x[1] || x[0] - y[0]);
  return kept.slice(0, count);
}

/** Classify a pruned graph. Pure; deterministic for a given input. */
export function classify(graph: WeightedGraph, params: ClassifyParams = {}): Topology {
  const minConfidence = params.minConfidence ?? DEFAULT_MIN_CONFIDENCE;
  const maxEdges = params.maxEdges ?? 1_000_000;
  const weights = EdgeList.of(graph.weights);
  const g = buildGraph(weights, graph.ids.length);
  const idOf = (v: number): string => graph.ids[g.vms[v]!]!;
  const vms = Array.from(g.vms, (i) => graph.ids[i]!);
  if (g.m === 0) return { class: 'none', confidence: 1, vms, edgeCount: 0, components: 0, fingerprint: fingerprintOf(g, graph.ids) };
  const components = componentCount(g);
  const winner = best(fitAll(g, minConfidence, maxEdges));
  const base = { vms, edgeCount: g.m, components, fingerprint: fingerprintOf(g, graph.ids) };
  if (winner.confidence < minConfidence) {
    const maxListed = params.maxListedEdges ?? 1000;
    const sorted = strongest(weights, maxListed);
    const edges = sorted.map(([key, weight]) => ({
      a: graph.ids[keySrc(key, graph.ids.length)]!,
      b: graph.ids[keyDst(key, graph.ids.length)]!,
      weight,
    }));
    return {
      class: 'irregular',
      confidence: 1 - winner.confidence,
      ...base,
      edges,
      edgesLeftOff: graph.weights.size - edges.length,
      bestGuess: { class: winner.cls, confidence: winner.confidence },
    };
  }
  return {
    class: winner.cls,
    confidence: winner.confidence,
    ...base,
    ...(winner.centre !== undefined ? { centre: idOf(winner.centre) } : {}),
    ...(winner.rows !== undefined && winner.cols !== undefined ? { rows: winner.rows, cols: winner.cols } : {}),
    ...(winner.k !== undefined ? { k: winner.k } : {}),
    ...(winner.order !== undefined ? { order: Array.from(winner.order, idOf) } : {}),
  };
}
