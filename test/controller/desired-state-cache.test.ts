import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DesiredStateCache } from '../../src/controller/desired-state-cache.ts';
import { desiredState, linksDigestOf, ruleLine, type RegistryView } from '../../src/controller/reconcile.ts';
import { rulesDigestOf } from '../../src/control/rule-set-digest.ts';
import type { LinkRecord } from '../../src/controller/store/records.ts';

const addr = (port: number) => ({ transport: 'tcp' as const, host: '127.0.0.1', port });
const mac = (i: number): string => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;

/** A seeded PRNG (mulberry32): the same history every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function view(hosts: number, vmsPerHost: number): RegistryView & { vms: Array<{ mac: string; host: string | undefined }>; links: LinkRecord[] } {
  const ids = Array.from({ length: hosts }, (_, i) => (i < 2 ? `hub${i}` : `s${String(i).padStart(3, '0')}`));
  return {
    hubId: 'hub0',
    hubOf: new Map(ids.slice(2).map((id) => [id, 'hub0'] as const)),
    hosts: ids.map((id, i) => ({ id, role: i < 2 ? 'hub' as const : 'spoke' as const, addresses: [addr(7000 + i)] })),
    vms: ids.flatMap((id, i) => Array.from({ length: vmsPerHost }, (_, k) => ({ mac: mac(i * vmsPerHost + k), host: id }))),
    links: [],
  };
}

function assertSame(got: ReturnType<DesiredStateCache['update']>, v: RegistryView, step: string): void {
  const want = desiredState(v);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), step);
  for (const [host, w] of want) {
    const g = got.get(host)!;
    assert.deepEqual(g.rules, w.rules, `${step}: rules of ${host}`);
    assert.deepEqual(g.links, w.links, `${step}: links of ${host}`);
    assert.deepEqual(g.members, w.members, `${step}: members of ${host}`);
    assert.equal(g.rulesDigest, rulesDigestOf(w.rules, ruleLine), `${step}: rules digest of ${host}`);
    assert.equal(g.linksDigest, linksDigestOf(w.links, w.members), `${step}: links digest of ${host}`);
  }
}

test('the cache gives what desiredState gives, digests included, over a random history of VM moves, fast paths, hubs and hosts', () => {
  const random = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  let v = view(12, 3);
  const cache = new DesiredStateCache();
  assertSame(cache.update(v), v, 'start');
  let next = 1000;
  for (let step = 0; step < 300; step++) {
    const spokes = v.hosts.filter((h) => h.role === 'spoke').map((h) => h.id);
    const r = random();
    let what: string;
    if (r < 0.3) {
      const vm = pick(v.vms);
      vm.host = random() < 0.15 ? undefined : pick(v.hosts).id;
      what = `VM ${vm.mac} to ${vm.host}`;
    } else if (r < 0.4) {
      v.vms.push({ mac: mac(next++), host: pick(v.hosts).id });
      what = 'VM added';
    } else if (r < 0.45 && v.vms.length > 0) {
      v.vms.splice(Math.floor(random() * v.vms.length), 1);
      what = 'VM removed';
    } else if (r < 0.65) {
      const [a, b] = [pick(v.hosts).id, pick(v.hosts).id].sort() as [string, string];
      const i = v.links.findIndex((l) => l.a === a && l.b === b);
      if (i >= 0) v.links.splice(i, 1);
      else v.links.push({ a, b, kind: 'fast-path', requestedBy: 'adaptation', reason: 'hot', createdMs: 0 });
      what = `fast path ${a}-${b} toggled`;
    } else if (r < 0.75) {
      const s = pick(spokes);
      (v.hubOf as Map<string, string | null>).set(s, pick(['hub0', 'hub1', null]));
      what = `${s} on another hub`;
    } else if (r < 0.8) {
      const h = pick(v.hosts);
      v = { ...v, hosts: v.hosts.map((x) => (x === h ? { ...x, addresses: random() < 0.3 ? [] : [addr(9000 + step)] } : x)) };
      what = `${h.id} address`;
    } else if (r < 0.85) {
      const id = `s${900 + step}`;
      v = { ...v, hosts: [...v.hosts, { id, role: 'spoke', addresses: [addr(8000 + step)] }] };
      what = `host ${id} added`;
    } else if (r < 0.88 && spokes.length > 3) {
      const gone = pick(spokes);
      v = { ...v, hosts: v.hosts.filter((h) => h.id !== gone) };
      what = `host ${gone} removed`;
    } else {
      what = 'nothing';
    }
    assertSame(cache.update(v), v, `step ${step} (${what})`);
  }
});

test('a VM moving between two spokes patches the rules of only the hosts whose rule for it changes; no change patches nothing', () => {
  const v = view(50, 10);
  v.links.push({ a: 's010', b: 's020', kind: 'fast-path', requestedBy: 'adaptation', reason: 'hot', createdMs: 0 });
  const cache = new DesiredStateCache();
  cache.update(v);
  assert.deepEqual(cache.last, { rebuilt: 50, patched: 0 });
  cache.update(v);
  assert.deepEqual(cache.last, { rebuilt: 0, patched: 0 }, 'nothing changed: nothing built or patched');
  // A VM of s010 moves to s030: hub0 re-points it, s010 gains a rule, s030 loses one, s020 (fast path to s010) re-points it;
  // hub1 sends it over the trunk to hub0 before and after.
  const vm = v.vms.find((x) => x.host === 's010')!;
  vm.host = 's030';
  const after = cache.update(v);
  assert.deepEqual(cache.last, { rebuilt: 0, patched: 4 });
  assert.deepEqual(cache.ruleChanges('s030'), { added: [], changed: [], removed: [`vm-${vm.mac.replaceAll(':', '')}`] });
  assert.deepEqual(cache.ruleChanges('s010'), { added: [`vm-${vm.mac.replaceAll(':', '')}`], changed: [], removed: [] });
  assert.equal(cache.ruleChanges('s040'), undefined, 'a spoke whose rule (to its hub) is the same is untouched');
  assertSame(after, v, 'after the move');
  // s040's backbone moves to hub1: its own set is built again; each hub re-points its VMs (hub0 via the trunk, hub1 direct); other spokes untouched.
  (v.hubOf as Map<string, string | null>).set('s040', 'hub1');
  const moved = cache.update(v);
  assert.deepEqual(cache.last, { rebuilt: 1, patched: 2 });
  assertSame(moved, v, 'after the hub change');
});
