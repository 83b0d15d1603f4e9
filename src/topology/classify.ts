import { buildGraph, componentCount, neighbours, type UndirectedGraph } from './graph-structure.ts';
import { best, fitAll, type FittedClass, type TopologyClass } from './class-fit.ts';
import { EdgeList } from './edge-list.ts';
import type { WeightedGraph } from './normalise.ts';
import { strongest } from './strongest-edges.ts';
import { keyDst, keySrc } from './vm-registry.ts';
import { DEFAULT_MIN_CONFIDENCE } from './vttif-defaults.ts';

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
 * The fits are in class-fit.ts (star, mesh, tree, the choice) and
 * ring-order-fit.ts (ring, bus, neighbour); the listing of an irregular
 * graph's strongest edges in strongest-edges.ts.
 *
 * Cost: O(n + m) per class, except neighbour (O(Σ deg²)). Cheap upper
 * bounds on each class's Jaccard (from edge counts and degrees) skip the
 * classes that cannot win, and graphs above `maxEdges` are declared
 * irregular without analysis, so a huge random graph costs O(n + m).
 */

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
