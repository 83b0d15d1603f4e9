import { EdgeList } from './edge-list.ts';

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

/**
 * Build the graph from undirected edge keys over `stride` indices
 * (undirectedKey(a, b, stride)), an EdgeList or any iterable. Self-loops and
 * duplicates are ignored. Adjacency lists come out sorted, so `has` is a
 * binary search in the shorter list: no hash set of edges.
 */
export function buildGraph(edges: EdgeList | Iterable<number>, stride: number): UndirectedGraph {
  let sorted: Float64Array | undefined;
  if (edges instanceof EdgeList && edges.keyArray.every((key) => Math.floor(key / stride) < key % stride)) sorted = edges.keyArray;
  else {
    const list: number[] = [];
    for (const key of edges instanceof EdgeList ? edges.keys() : edges) {
      const a = Math.floor(key / stride);
      const b = key % stride;
      if (a !== b) list.push(a < b ? a * stride + b : b * stride + a);
    }
    sorted = Float64Array.from(list).sort();
  }
  // Vertices: every index that appears, ascending.
  const local = new Int32Array(stride).fill(-1);
  for (let i = 0; i < sorted.length; i++) {
    const key = sorted[i]!;
    local[Math.floor(key / stride)] = 0;
    local[key % stride] = 0;
  }
  let n = 0;
  for (let v = 0; v < stride; v++) if (local[v] === 0) local[v] = n++;
  const vms = new Int32Array(n);
  for (let v = 0; v < stride; v++) if (local[v]! >= 0) vms[local[v]!] = v;
  // Unique edges (a < b, sorted by a then b) → degrees → CSR.
  const ea = new Int32Array(sorted.length);
  const eb = new Int32Array(sorted.length);
  let m = 0;
  const degree = new Int32Array(n);
  let prev = -1;
  for (let i = 0; i < sorted.length; i++) {
    const key = sorted[i]!;
    if (key === prev) continue;
    prev = key;
    const a = local[Math.floor(key / stride)]!;
    const b = local[key % stride]!;
    if (a === b) continue;
    ea[m] = a;
    eb[m] = b;
    m++;
    degree[a]!++;
    degree[b]!++;
  }
  const offsets = new Int32Array(n + 1);
  for (let v = 0; v < n; v++) offsets[v + 1] = offsets[v]! + degree[v]!;
  const fill = offsets.slice(0, n);
  const adj = new Int32Array(m * 2);
  // In (a, b) order every list receives its smaller neighbours (as b) before its larger ones (as a), each ascending.
  for (let i = 0; i < m; i++) adj[fill[eb[i]!]!++] = ea[i]!;
  for (let i = 0; i < m; i++) adj[fill[ea[i]!]!++] = eb[i]!;
  const has = (x: number, y: number): boolean => {
    const v = degree[x]! <= degree[y]! ? x : y;
    const target = v === x ? y : x;
    let lo = offsets[v]!;
    let hi = offsets[v + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const u = adj[mid]!;
      if (u === target) return true;
      if (u < target) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  };
  return { n, m, vms, offsets, adj, degree, has };
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

/** The `count` vertices of smallest degree (ties by index); O(n · count). */
export function minDegreeVertices(g: UndirectedGraph, count: number): number[] {
  const picked: number[] = [];
  for (let v = 0; v < g.n; v++) {
    const d = g.degree[v]!;
    if (picked.length === count && d >= g.degree[picked[count - 1]!]!) continue;
    let i = picked.length < count ? picked.length : count - 1;
    picked[i] = v;
    while (i > 0 && g.degree[picked[i - 1]!]! > d) {
      picked[i] = picked[i - 1]!;
      picked[i - 1] = v;
      i--;
    }
  }
  return picked;
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
