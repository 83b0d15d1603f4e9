/**
 * The barrier's shape: a breadth-first spanning tree of the pattern graph,
 * rooted at worker 0. Arrivals travel up the tree, the release travels down,
 * so the barrier uses only the pattern's own edges and the traffic the overlay
 * sees (and VTTIF infers) stays exactly the pattern's graph.
 */
import type { PatternEdge } from '../topology/patterns.ts';

export interface BarrierTree {
  /** parent[i]: the worker i reports its arrival to; undefined for the root. */
  readonly parent: readonly (number | undefined)[];
  /** children[i]: the workers whose arrival i waits for, ascending. */
  readonly children: readonly (readonly number[])[];
  /** Hops from the root to the deepest worker. */
  readonly height: number;
}

/** Neighbours of every worker in an undirected edge list, ascending. */
export function adjacency(n: number, edges: readonly PatternEdge[]): number[][] {
  const adj: number[][] = Array.from({ length: n }, () => []);
  for (const [a, b] of edges) {
    adj[a]?.push(b);
    adj[b]?.push(a);
  }
  for (const list of adj) list.sort((x, y) => x - y);
  return adj;
}

/** BFS spanning tree from worker 0; undefined when the graph does not reach every worker. */
export function barrierTree(n: number, edges: readonly PatternEdge[]): BarrierTree | undefined {
  const adj = adjacency(n, edges);
  const parent: (number | undefined)[] = new Array<number | undefined>(n).fill(undefined);
  const depth = new Array<number>(n).fill(-1);
  const children: number[][] = Array.from({ length: n }, () => []);
  depth[0] = 0;
  const queue = [0];
  let height = 0;
  for (let head = 0; head < queue.length; head++) {
    const u = queue[head]!;
    for (const v of adj[u]!) {
      if (depth[v] !== -1) continue;
      depth[v] = depth[u]! + 1;
      height = Math.max(height, depth[v]!);
      parent[v] = u;
      children[u]!.push(v);
      queue.push(v);
    }
  }
  if (queue.length !== n) return undefined;
  return { parent, children, height };
}
