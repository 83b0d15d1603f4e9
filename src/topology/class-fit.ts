import { bfsDistances, minDegreeVertices, neighbours, type UndirectedGraph } from './graph-structure.ts';
import { fitNeighbour, fitRingAndBus } from './ring-order-fit.ts';

/**
 * How well a graph fits each class: for each class the best-fitting ideal
 * graph on the same vertices, found by structure (never by numbering), and
 * the class's confidence, the Jaccard similarity |E ∩ I| / |E ∪ I| of the
 * observed edges E and that ideal I. This file holds the shared vocabulary
 * (Fit, the Jaccard, cheap upper bounds that skip hopeless classes), the
 * star, mesh and tree fits, and the choice of the best class; the ring,
 * bus and neighbour-exchange fits, which lay the VMs out in an order, are in
 * ring-order-fit.ts. See classify.ts for the classes.
 */

export type TopologyClass = 'none' | 'all-to-all' | 'ring' | 'bus' | 'star' | 'mesh' | 'tree' | 'neighbour' | 'irregular';
export type FittedClass = Exclude<TopologyClass, 'none' | 'irregular'>;

/** Ties go to the more specific class: earlier here. */
export const CLASS_PRECEDENCE: readonly FittedClass[] = ['all-to-all', 'ring', 'bus', 'star', 'mesh', 'neighbour', 'tree'];

export interface Fit {
  readonly cls: FittedClass;
  readonly confidence: number;
  readonly centre?: number;
  readonly rows?: number;
  readonly cols?: number;
  readonly k?: number;
  readonly order?: Int32Array;
}


export function jaccard(inter: number, observed: number, ideal: number): number {
  const union = observed + ideal - inter;
  return union === 0 ? 0 : inter / union;
}

/** Upper bound of the Jaccard with any ideal of `idealEdges` edges whose vertices have degree ≤ degCap. */
const cappedDegreeSums = new WeakMap<UndirectedGraph, Map<number, number>>();

export function boundFor(g: UndirectedGraph, idealEdges: number, degCap: number): number {
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

export function fitAll(g: UndirectedGraph, minConfidence: number, maxEdges: number): Fit[] {
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

export function best(fits: readonly Fit[]): Fit {
  let winner = fits[0]!;
  for (const f of fits) {
    const better = f.confidence > winner.confidence + 1e-9;
    const tie = Math.abs(f.confidence - winner.confidence) <= 1e-9;
    if (better || (tie && CLASS_PRECEDENCE.indexOf(f.cls) < CLASS_PRECEDENCE.indexOf(winner.cls))) winner = f;
  }
  return winner;
}
