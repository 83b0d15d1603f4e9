import { keyDst, keySrc } from './vm-registry.ts';

/**
 * A compact undirected graph (CSR adjacency) over the VMs that communicate,
 * built from a sparse edge map, plus the structural tools classification
 * needs: BFS distances, components, degree statistics, Warnsdorff path
 * ordering. Vertices are numbered 0..n−1 locally; `vms[v]` is the registry
 * index of local vertex v (ascending). All of it is O(n + m).
 */

export interface UndirectedGraph {
  readonly n: number;
  readonly m: number;
  /** Registry index of each local vertex, ascending. */
  readonly vms: Int32Array;
  readonly offsets: Int32Array;
  readonly adj: Int32Array;
  readonly degree: Int32Array;
  has(a: number, b: number): boolean;
}

/** Build the graph from undirected edge keys over `stride` indices (undirectedKey(a, b, stride)). Self-loops are ignored. */
export function buildGraph(keys: Iterable<number>, stride: number): UndirectedGraph {
  const pairs: number[] = [];
  const seen = new Set<number>();
  for (const key of keys) {
    const a = keySrc(key, stride);
    const b = keyDst(key, stride);
    if (a === b) continue;
    pairs.push(a, b);
    seen.add(a);
    seen.add(b);
  }
  const vms = Int32Array.from([...seen].sort((x, y) => x - y));
  const n = vms.length;
  const local = new Map<number, number>();
  for (let i = 0; i < n; i++) local.set(vms[i]!, i);
  const degree = new Int32Array(n);
  const ends = new Int32Array(pairs.length);
  for (let i = 0; i < pairs.length; i++) ends[i] = local.get(pairs[i]!)!;
  const edgeSet = new Set<number>();
  const unique: number[] = [];
  for (let i = 0; i < ends.length; i += 2) {
    const a = Math.min(ends[i]!, ends[i + 1]!);
    const b = Math.max(ends[i]!, ends[i + 1]!);
    const k = a * n + b;
    if (edgeSet.has(k)) continue;
    edgeSet.add(k);
    unique.push(a, b);
    degree[a]!++;
    degree[b]!++;
  }
  const offsets = new Int32Array(n + 1);
  for (let v = 0; v < n; v++) offsets[v + 1] = offsets[v]! + degree[v]!;
  const fill = offsets.slice(0, n);
  const adj = new Int32Array(unique.length);
  for (let i = 0; i < unique.length; i += 2) {
    const a = unique[i]!;
    const b = unique[i + 1]!;
    adj[fill[a]!++] = b;
    adj[fill[b]!++] = a;
  }
  return {
    n,
    m: unique.length / 2,
    vms,
    offsets,
    adj,
    degree,
    has: (a: number, b: number): boolean => edgeSet.has(a < b ? a * n + b : b * n + a),
  };
}

export function neighbours(g: UndirectedGraph, v: number): Int32Array {
  return g.adj.subarray(g.offsets[v]!, g.offsets[v + 1]!);
}

/** Hop distances from `src` (−1 where unreachable). */
export function bfsDistances(g: UndirectedGraph, src: number): Int32Array {
  const dist = new Int32Array(g.n).fill(-1);
  const queue = new Int32Array(g.n);
  let head = 0;
  let tail = 0;
  dist[src] = 0;
  queue[tail++] = src;
  while (head < tail) {
    const v = queue[head++]!;
    const d = dist[v]! + 1;
    for (let i = g.offsets[v]!; i < g.offsets[v + 1]!; i++) {
      const u = g.adj[i]!;
      if (dist[u] === -1) {
        dist[u] = d;
        queue[tail++] = u;
      }
    }
  }
  return dist;
}

export function componentCount(g: UndirectedGraph): number {
  const seen = new Uint8Array(g.n);
  const stack: number[] = [];
  let count = 0;
  for (let s = 0; s < g.n; s++) {
    if (seen[s] === 1) continue;
    count++;
    seen[s] = 1;
    stack.push(s);
    while (stack.length > 0) {
      const v = stack.pop()!;
      for (let i = g.offsets[v]!; i < g.offsets[v + 1]!; i++) {
        const u = g.adj[i]!;
        if (seen[u] === 0) {
          seen[u] = 1;
          stack.push(u);
        }
      }
    }
  }
  return count;
}

/** The `count` vertices of smallest degree (ties by index). */
export function minDegreeVertices(g: UndirectedGraph, count: number): number[] {
  const order = Array.from({ length: g.n }, (_, i) => i);
  order.sort((a, b) => g.degree[a]! - g.degree[b]! || a - b);
  return order.slice(0, count);
}

/**
 * An ordering of all vertices that follows edges as long as it can:
 * Warnsdorff's rule (step to the unvisited neighbour with the fewest
 * unvisited neighbours), starting at `start`; when stuck, it starts a new
 * run at the first unvisited vertex. On a
 * path started at an end, or on a cycle, it walks the whole graph.
 */
export function pathOrder(g: UndirectedGraph, start: number): Int32Array {
  const order = new Int32Array(g.n);
  const visited = new Uint8Array(g.n);
  const remaining = Int32Array.from(g.degree);
  let len = 0;
  const visit = (v: number): void => {
    visited[v] = 1;
    order[len++] = v;
    for (let i = g.offsets[v]!; i < g.offsets[v + 1]!; i++) remaining[g.adj[i]!]!--;
  };
  let cur = start;
  visit(cur);
  let scan = 0;
  while (len < g.n) {
    let next = -1;
    for (let i = g.offsets[cur]!; i < g.offsets[cur + 1]!; i++) {
      const u = g.adj[i]!;
      if (visited[u] === 1) continue;
      if (next === -1 || remaining[u]! < remaining[next]! || (remaining[u] === remaining[next] && u < next)) next = u;
    }
    if (next === -1) {
      // Stuck: restart at the first unvisited vertex (keeps the whole walk O(n + m)).
      while (visited[scan] === 1) scan++;
      next = scan;
    }
    visit(next);
    cur = next;
  }
  return order;
}
