import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

/**
 * The traffic matrix's order (src/controller/web/matrix-order.js, a browser
 * module without DOM or page state, so it runs in Node too): the inferred
 * structure's shape must come out as rows next to each other.
 */

interface Vm { mac: string; name: string; host: string | null; site: string | null }
interface Edge { a: string; b: string; weight: number }
interface MatrixOrderModule {
  matrixOrder(order: string, vms: Vm[], topology: { centre: string | null; edges: Edge[] }, traffic: { src: string; dst: string; bytesPerSec: number }[]): string[];
  heatColour(bytesPerSec: number, max: number): string | null;
}
const mod = (await import(new URL('../../../src/controller/web/matrix-order.js', import.meta.url).href)) as MatrixOrderModule;

const mac = (i: number): string => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
/** n VMs, 3 a host over 2 sites, named in reverse so name order is not placement order. */
function vms(n: number): Vm[] {
  return Array.from({ length: n }, (_, i) => ({ mac: mac(i), name: `vm${String(n - i).padStart(5, '0')}`, host: `h${Math.floor(i / 3)}`, site: `s${i % 2}` }));
}
/** A ring through `order` (MACs). */
const ring = (order: string[]): Edge[] => order.map((a, i) => ({ a, b: order[(i + 1) % order.length]!, weight: 1 }));
/** A scattered visiting order: i * 7 mod n (n not a multiple of 7). */
const scattered = (n: number): string[] => Array.from({ length: n }, (_, i) => mac((i * 7) % n));

function adjacentInOutput(out: string[], edges: Edge[]): number {
  const set = new Set(edges.flatMap((e) => [`${e.a}|${e.b}`, `${e.b}|${e.a}`]));
  return out.slice(1).filter((m, i) => set.has(`${out[i]}|${m}`)).length;
}

describe('traffic matrix order', () => {
  it('puts a ring in ring order, whatever the placement and names', () => {
    const edges = ring(scattered(30));
    const out = mod.matrixOrder('structure', vms(30), { centre: null, edges }, []);
    assert.equal(out.length, 30);
    assert.equal(new Set(out).size, 30);
    assert.equal(adjacentInOutput(out, edges), 29, 'every row next to a ring neighbour');
    // By name or by host the same ring is scattered.
    assert.ok(adjacentInOutput(mod.matrixOrder('name', vms(30), { centre: null, edges }, []), edges) < 5);
    assert.ok(adjacentInOutput(mod.matrixOrder('host', vms(30), { centre: null, edges }, []), edges) < 5);
  });

  it('puts a star\'s centre first, then its leaves heaviest first', () => {
    const all = vms(12);
    const centre = all[5]!.mac;
    const edges = all.filter((v) => v.mac !== centre).map((v, i) => ({ a: centre, b: v.mac, weight: i / 10 }));
    const out = mod.matrixOrder('structure', all, { centre, edges }, []);
    assert.equal(out[0], centre);
    assert.deepEqual(out.slice(1), edges.map((e) => e.b).reverse());
  });

  it('keeps each subtree of a tree in one block, from the centre', () => {
    const all = vms(7);
    const [r, a, b, a1, a2, b1, b2] = all.map((v) => v.mac) as [string, string, string, string, string, string, string];
    const edges = [{ a: r, b: a, weight: 2 }, { a: r, b, weight: 1 }, { a, b: a1, weight: 1 }, { a, b: a2, weight: 1 }, { a: b, b: b1, weight: 1 }, { a: b, b: b2, weight: 1 }];
    const out = mod.matrixOrder('structure', all, { centre: r, edges }, []);
    assert.equal(out[0], r);
    assert.deepEqual(new Set(out.slice(1, 4)), new Set([a, a1, a2]));
    assert.deepEqual(new Set(out.slice(4, 7)), new Set([b, b1, b2]));
  });

  it('walks a bus from one end', () => {
    const order = scattered(20);
    const edges = order.slice(1).map((m, i) => ({ a: order[i]!, b: m, weight: 1 }));
    const out = mod.matrixOrder('structure', vms(20), { centre: null, edges }, []);
    assert.ok(out[0] === order[0] || out[0] === order[19]);
    assert.equal(adjacentInOutput(out, edges), 19);
  });

  it('walks the matrix\'s own pairs when nothing is inferred, and puts silent VMs last by host', () => {
    const order = scattered(20).slice(0, 10);
    const traffic = order.map((src, i) => ({ src, dst: order[(i + 1) % order.length]!, bytesPerSec: 1000 }));
    const all = vms(20);
    const out = mod.matrixOrder('structure', all, { centre: null, edges: [] }, traffic);
    assert.equal(adjacentInOutput(out.slice(0, 10), ring(order)), 9);
    const silent = mod.matrixOrder('host', all, { centre: null, edges: [] }, []).filter((m) => !order.includes(m));
    assert.deepEqual(out.slice(10), silent, 'the rest by site, host and name');
  });

  it('walks a 10 000-VM ring without running out of stack', () => {
    const edges = ring(scattered(10_000));
    const out = mod.matrixOrder('structure', vms(10_000), { centre: null, edges }, []);
    assert.equal(adjacentInOutput(out, edges), 9_999);
  });

  it('sorts by name and by site, host and name', () => {
    const all = vms(6);
    assert.deepEqual(mod.matrixOrder('name', all, { centre: null, edges: [] }, []), all.map((v) => v.mac).reverse());
    // Site s0 (VMs 0, 2, 4: host h0 holds 0 and 2, named vm00006 and vm00004), then s1 (1 on h0; 3 and 5 on h1).
    assert.deepEqual(mod.matrixOrder('host', all, { centre: null, edges: [] }, []), [2, 0, 4, 1, 5, 3].map((i) => all[i]!.mac));
  });

  it('colours no traffic as nothing, and busier cells darker on a log scale', () => {
    assert.equal(mod.heatColour(0, 1000), null);
    assert.equal(mod.heatColour(5, 0), null);
    const lum = (c: string): number => c.match(/\d+/g)!.map(Number).reduce((s, x) => s + x, 0);
    const levels = [1, 10, 100, 1000].map((v) => lum(mod.heatColour(v, 1000)!));
    for (let i = 1; i < levels.length; i++) assert.ok(levels[i]! < levels[i - 1]!, `${levels[i]} darker than ${levels[i - 1]}`);
    assert.equal(mod.heatColour(0.001, 1000), mod.heatColour(1, 1000), 'below three decades all look the same');
  });
});
