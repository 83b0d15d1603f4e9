import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMac } from '../../src/common/mac.ts';
import { ADAPTATION_WARMUP_INTERVALS, INITIAL_ADAPTATION, planFastPaths, vmNamesByMac, type FastPathInput } from '../../src/controller/adaptation-planner.ts';
import { DEFAULT_POLICY } from '../../src/controller/deployment-file.ts';
import type { LinkRecord, VmRecord } from '../../src/controller/store/records.ts';
import { EdgeList } from '../../src/topology/edge-list.ts';
import { buildRegistryIndex, edgeKey } from '../../src/topology/vm-registry.ts';

const V1 = '02:00:00:00:00:01';
const V2 = '02:00:00:00:00:02';
const registry = buildRegistryIndex([{ id: V1, mac: parseMac(V1), host: 'h1' }, { id: V2, mac: parseMac(V2), host: 'h2' }]);
const POLICY = { ...DEFAULT_POLICY, fastPathMinBytesPerSec: 100_000 };
const BACKBONE: LinkRecord[] = [
  { a: 'h1', b: 'hub', kind: 'backbone', requestedBy: 'deployment', reason: 'star', createdMs: 0 },
  { a: 'h2', b: 'hub', kind: 'backbone', requestedBy: 'deployment', reason: 'star', createdMs: 0 },
];

/** v1 → v2 (and back) at `rate` bytes/s, smoothed. */
function input(rate: number, links: LinkRecord[] = BACKBONE, vmNames: ReadonlyMap<number, string> = new Map()): FastPathInput {
  const rates = rate === 0 ? EdgeList.EMPTY : EdgeList.of(new Map([[edgeKey(0, 1, 2), rate], [edgeKey(1, 0, 2), rate]]));
  return { matrix: { ids: registry.ids, rates, atMs: 0, hostSeenMs: new Map() }, registry, links, hubId: 'hub', linkReports: [], rates: new Map(), vmNames };
}

test('two hosts talking through the hub above the threshold get a fast-path link: a write, its events and decision, a reconcile', () => {
  const { state, effects } = planFastPaths(INITIAL_ADAPTATION, input(1e6), POLICY, 5000);
  assert.equal(effects.writes.length, 1);
  const w = effects.writes[0]!;
  assert.ok(w.op === 'put-link');
  assert.deepEqual([w.link.a, w.link.b, w.link.kind, w.link.requestedBy, w.atMs], ['h1', 'h2', 'fast-path', 'adaptation', 5000]);
  assert.match(w.link.reason, /through the hub/);
  assert.deepEqual(effects.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['link-changed', 'fast-path-added']);
  const changed = effects.events[0]!;
  assert.ok(changed.kind === 'event' && changed.type === 'link-changed' && changed.payload.link.requestedBy === 'adaptation' && changed.payload.link.state === 'pending');
  assert.equal(effects.reconcile, 'update period');
  assert.deepEqual(effects.messages, [], 'pushes are the reconcile\'s, not adaptation\'s');
  assert.equal(state.notChosenKey, '');
});

/** Adaptation that started long enough ago to remove links. */
const WARM = { ...INITIAL_ADAPTATION, startedMs: 0 };

test('an adaptation link whose traffic stopped is removed; one an operator asked for is not adaptation\'s to remove', () => {
  const ours: LinkRecord = { a: 'h1', b: 'h2', kind: 'fast-path', requestedBy: 'adaptation', reason: 'hot', createdMs: 1 };
  const { effects } = planFastPaths(WARM, input(0, [...BACKBONE, ours]), POLICY, ADAPTATION_WARMUP_INTERVALS * POLICY.smoothingIntervalMs);
  assert.deepEqual(effects.writes, [{ op: 'delete-link', a: 'h1', b: 'h2', kind: 'fast-path' }]);
  assert.deepEqual(effects.events.map((e) => (e.kind === 'event' ? e.type : e.decision)), ['link-removed', 'fast-path-removed']);
  const theirs: LinkRecord = { ...ours, requestedBy: 'operator:ann' };
  const kept = planFastPaths(WARM, input(0, [...BACKBONE, theirs]), POLICY, 1e9).effects;
  assert.deepEqual([kept.writes, kept.events, kept.reconcile], [[], [], undefined]);
});

test('a controller just started (a new leader, a restart) removes no adaptation link until its smoothed rates have had the warm-up', () => {
  const ours: LinkRecord = { a: 'h1', b: 'h2', kind: 'fast-path', requestedBy: 'adaptation', reason: 'hot', createdMs: 1 };
  const warmUpMs = ADAPTATION_WARMUP_INTERVALS * POLICY.smoothingIntervalMs;
  const first = planFastPaths(INITIAL_ADAPTATION, input(0, [...BACKBONE, ours]), POLICY, 50_000);
  assert.deepEqual([first.effects.writes, first.effects.events], [[], []], 'the predecessor\'s link kept at the first period');
  assert.equal(first.state.startedMs, 50_000);
  const late = planFastPaths(first.state, input(0, [...BACKBONE, ours]), POLICY, 50_000 + warmUpMs - 1);
  assert.deepEqual(late.effects.writes, [], 'kept until the warm-up ends');
  const after = planFastPaths(late.state, input(0, [...BACKBONE, ours]), POLICY, 50_000 + warmUpMs);
  assert.deepEqual(after.effects.writes, [{ op: 'delete-link', a: 'h1', b: 'h2', kind: 'fast-path' }], 'removed once warm');
  // Adding is not held back: a rate over the add threshold is real from the first period.
  const added = planFastPaths(INITIAL_ADAPTATION, input(1e6), POLICY, 50_000);
  assert.equal(added.effects.writes[0]?.op, 'put-link');
});

test('a link that does not fit the budget is one decision, repeated only when the held-back set changes', () => {
  const policy = { ...POLICY, fastPathBudget: 0 };
  const first = planFastPaths(INITIAL_ADAPTATION, input(1e6), policy, 1000);
  assert.deepEqual(first.effects.writes, []);
  assert.equal(first.effects.events.length, 1);
  const d = first.effects.events[0]!;
  assert.ok(d.kind === 'decision' && d.decision === 'no-change' && /fast-path budget \(0\) full/.test(d.reason));
  assert.deepEqual(first.effects.logs.map((l) => l.level), ['info']);
  const again = planFastPaths(first.state, input(1e6), policy, 1100);
  assert.deepEqual([again.effects.events, again.effects.logs], [[], []]);
  assert.deepEqual(again.state, first.state);
});

test('no hub, no adaptation', () => {
  const { state, effects } = planFastPaths(INITIAL_ADAPTATION, { ...input(1e6), hubId: undefined }, POLICY, 1000);
  assert.deepEqual([state, effects.writes, effects.events], [{ ...INITIAL_ADAPTATION, startedMs: 1000 }, [], []]);
});

test('a fast-path decision names the VMs by their deployment names where they have one, by MAC otherwise', () => {
  const vms: VmRecord[] = [
    { mac: V1, name: 'web', ip: undefined, host: 'h1', state: 'running', source: 'deployment', updatedMs: 0 },
    { mac: V2, name: undefined, ip: undefined, host: 'h2', state: 'running', source: 'learned', updatedMs: 0 },
  ];
  const names = vmNamesByMac(vms);
  assert.deepEqual([...names.values()], ['web']);
  const { effects } = planFastPaths(INITIAL_ADAPTATION, input(1e6, BACKBONE, names), POLICY, 5000);
  const w = effects.writes[0]!;
  assert.ok(w.op === 'put-link');
  assert.match(w.link.reason, /\bweb\b/);
  assert.match(w.link.reason, new RegExp(V2));
  assert.doesNotMatch(w.link.reason, new RegExp(V1));
});
