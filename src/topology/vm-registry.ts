import type { Mac } from '../common/mac.ts';
import { EdgeList } from './edge-list.ts';
import { VmRegistryError } from './errors.ts';

/**
 * The controller's view of which VM (by MAC) runs on which host, turned into
 * dense indices for the sparse matrices of this area. Build it once when the
 * registry changes and pass it to every step; every matrix carries the id
 * list it was indexed with, so a later index in another order is remapped.
 */

export interface VmPlacement {
  readonly id: string;
  readonly mac: Mac;
  readonly host: string;
}

export interface RegistryIndex {
  /** VM ids; a VM's position here is its index in every matrix built with this registry. */
  readonly ids: readonly string[];
  readonly macs: readonly Mac[];
  readonly hosts: readonly string[];
  readonly indexOfMac: ReadonlyMap<Mac, number>;
  readonly indexOfId: ReadonlyMap<string, number>;
  /** Index of a MAC, −1 if unknown; faster than indexOfMac (small-integer hash keys). */
  lookupMac(mac: Mac): number;
}

/** Most VMs one index can hold: edge keys pack two indices in one exact double. */
export const MAX_VMS = 1 << 20;

/** Index the registry; throws VmRegistryError on a duplicate id or MAC (a controller bug, not input). */
export function buildRegistryIndex(vms: readonly VmPlacement[]): RegistryIndex {
  if (vms.length > MAX_VMS) throw new VmRegistryError(`${vms.length} VMs exceed the limit of ${MAX_VMS}`);
  const ids: string[] = [];
  const macs: Mac[] = [];
  const hosts: string[] = [];
  const indexOfMac = new Map<Mac, number>();
  const indexOfId = new Map<string, number>();
  for (const vm of vms) {
    if (indexOfId.has(vm.id)) throw new VmRegistryError(`duplicate VM id ${JSON.stringify(vm.id)}`);
    if (indexOfMac.has(vm.mac)) throw new VmRegistryError(`duplicate MAC ${vm.mac} (VM ${JSON.stringify(vm.id)})`);
    const i = ids.length;
    ids.push(vm.id);
    macs.push(vm.mac);
    hosts.push(vm.host);
    indexOfMac.set(vm.mac, i);
    indexOfId.set(vm.id, i);
  }
  // MACs are 48-bit, so as Map keys they are boxed doubles; look them up in an
  // open-addressing table of 32-bit slots instead (index + 1, 0 = empty), at
  // most half full, confirming each probe against the MACs themselves.
  let size = 16;
  while (size < 2 * macs.length) size *= 2;
  const mask = size - 1;
  const slots = new Int32Array(size);
  const macOf = Float64Array.from(macs);
  for (let i = 0; i < macs.length; i++) {
    let h = macHash(macs[i]!) & mask;
    while (slots[h] !== 0) h = (h + 1) & mask;
    slots[h] = i + 1;
  }
  const lookupMac = (mac: Mac): number => {
    let h = macHash(mac) & mask;
    for (;;) {
      const s = slots[h]!;
      if (s === 0) return -1;
      if (macOf[s - 1] === mac) return s - 1;
      h = (h + 1) & mask;
    }
  };
  return { ids, macs, hosts, indexOfMac, indexOfId, lookupMac };
}

function macHash(mac: Mac): number {
  // Low and high 32 bits by integer conversions (no floating-point modulo); any number hashes.
  const lo = mac >>> 0;
  const hi = (mac / 0x1_0000_0000) | 0;
  const h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  return (h ^ (h >>> 15)) & 0x3fff_ffff;
}

/*
 * Edge keys. A pair of VM indices over an id list of n VMs is the number
 * src·n + dst: exact in a double for n ≤ MAX_VMS, and a small integer (an
 * unboxed "Smi" for V8, several times faster as a Map key than a boxed
 * double) for n ≤ 32,768. The stride n is always the length of the id list
 * the keys index into (matrix.ids, graph.ids, registry.ids).
 */

/** Key of the directed pair (src, dst) of VM indices among n VMs. */
export function edgeKey(src: number, dst: number, n: number): number {
  return src * n + dst;
}

/** Key of the undirected pair {a, b} among n VMs: the smaller index first. */
export function undirectedKey(a: number, b: number, n: number): number {
  return a < b ? a * n + b : b * n + a;
}

export function keySrc(key: number, n: number): number {
  return Math.floor(key / n);
}

export function keyDst(key: number, n: number): number {
  return key % n;
}

/**
 * Re-index a sparse edge map built over `fromIds` onto `toIds` (same ids,
 * other order, some added or gone). Edges touching a VM no longer present
 * are dropped. With equal id lists the same pairs come back (as an EdgeList).
 */
export function remapEdges(
  edges: ReadonlyMap<number, number>,
  fromIds: readonly string[],
  to: Pick<RegistryIndex, 'ids' | 'indexOfId'>,
  undirected: boolean,
): EdgeList {
  if (sameIds(fromIds, to.ids)) return EdgeList.of(edges);
  const from = fromIds.length;
  const n = to.ids.length;
  const keys = new Float64Array(edges.size);
  const values = new Float64Array(edges.size);
  let len = 0;
  for (const [key, value] of edges) {
    const a = to.indexOfId.get(fromIds[keySrc(key, from)]!);
    const b = to.indexOfId.get(fromIds[keyDst(key, from)]!);
    if (a === undefined || b === undefined) continue;
    keys[len] = undirected ? undirectedKey(a, b, n) : edgeKey(a, b, n);
    values[len] = value;
    len++;
  }
  return EdgeList.fromPairs(keys, values, len);
}

export function sameIds(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
