import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ControllerModel } from '../../src/controller/api-model.ts';
import type { EventView } from '../../src/controller/api-events.ts';

/**
 * One suite for every implementation of the operator-facing controller model
 * (the in-memory one, the SQLite store one): what the API server relies on.
 * The harness seeds hosts and backbone links its own way.
 */

export interface ControllerModelHarness {
  model: ControllerModel;
  /** Hosts (up) with these ids, and backbone links between the given pairs. */
  seed(hosts: readonly string[], backbone: ReadonlyArray<readonly [string, string]>): void | Promise<void>;
  close(): void | Promise<void>;
}

const NOT_FOUND = /^VNET_ERR_(NOT_FOUND|UNKNOWN_HOST)$/;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
  return 'resolved';
}

export function controllerModelCompliance(name: string, make: () => Promise<ControllerModelHarness>): void {
  describe(`ControllerModel compliance: ${name}`, () => {
    async function withModel(fn: (h: ControllerModelHarness) => Promise<void>): Promise<void> {
      const h = await make();
      try {
        await h.seed(['h-a', 'h-b', 'h-c', 'hub'], [['h-a', 'hub'], ['hub', 'h-b'], ['h-c', 'hub']]);
        await fn(h);
      } finally {
        await h.close();
      }
    }

    it('lists and gets hosts and links; unknown ones are undefined; links by either order', () =>
      withModel(async ({ model }) => {
        assert.deepEqual(model.listHosts().map((x) => x.id).sort(), ['h-a', 'h-b', 'h-c', 'hub']);
        assert.equal(model.getHost('nope'), undefined);
        assert.equal(model.getRules('nope'), undefined);
        assert.equal(model.getRules('h-a')?.host, 'h-a');
        const l = model.getLink('hub', 'h-a');
        assert.ok(l !== undefined);
        assert.deepEqual([l.a, l.b, l.kind], ['h-a', 'hub', 'backbone']);
        assert.deepEqual(model.getLink('h-a', 'hub'), l);
        assert.equal(model.getLink('h-a', 'h-b'), undefined);
      }));

    it('adds a fast-path link: normalised, operator-requested, audited with the actor, announced as events', () =>
      withModel(async ({ model }) => {
        const before = model.latestSeq();
        const live: EventView[] = [];
        const off = model.subscribe((e) => live.push(e));
        const link = await model.addFastPathLink('h-b', 'h-a', 'compliance', 'operator:tester');
        off();
        assert.deepEqual([link.a, link.b, link.kind, link.requestedBy, link.actor, link.reason], ['h-a', 'h-b', 'fast-path', 'operator', 'operator:tester', 'compliance']);
        assert.equal(model.getLink('h-a', 'h-b')?.kind, 'fast-path');
        assert.ok(model.listLinks().some((l) => l.a === 'h-a' && l.b === 'h-b'));
        const after = model.listEvents({ since: before }).events;
        assert.deepEqual(after, live, 'subscribers see the same events the history holds');
        const audit = after.find((e) => e.type === 'operator-action');
        assert.ok(audit?.type === 'operator-action' && audit.payload.actor === 'operator:tester');
        const changed = after.find((e) => e.type === 'link-changed');
        assert.ok(changed?.type === 'link-changed' && changed.payload.link.a === 'h-a' && changed.payload.link.b === 'h-b');
      }));

    it('refuses bad link commands with stable codes', () =>
      withModel(async ({ model }) => {
        assert.match(await codeOf(model.addFastPathLink('h-a', 'mars', '', 'o')), NOT_FOUND);
        assert.equal(await codeOf(model.addFastPathLink('h-a', 'h-a', '', 'o')), 'VNET_ERR_CONFLICT');
        assert.equal(await codeOf(model.addFastPathLink('hub', 'h-a', '', 'o')), 'VNET_ERR_CONFLICT');
        await model.addFastPathLink('h-a', 'h-c', '', 'o');
        assert.equal(await codeOf(model.addFastPathLink('h-c', 'h-a', '', 'o')), 'VNET_ERR_CONFLICT');
        assert.match(await codeOf(model.removeFastPathLink('h-a', 'h-b', 'o')), NOT_FOUND);
        assert.equal(await codeOf(model.removeFastPathLink('h-a', 'hub', 'o')), 'VNET_ERR_CONFLICT');
        assert.equal(model.getLink('h-a', 'hub')?.kind, 'backbone', 'the backbone link is untouched');
      }));

    it('refuses migrations of unknown VMs, to unknown hosts, and cancels of unknown ids, with the same codes', () =>
      withModel(async ({ model }) => {
        if (model.startMigration === undefined || model.cancelMigration === undefined) return;
        assert.equal(await codeOf(model.startMigration('no-such-vm', 'h-b', 'o')), 'VNET_ERR_MIGRATION_UNKNOWN_VM');
        assert.equal(await codeOf(model.startMigration('02:00:00:00:00:99', 'h-b', 'o')), 'VNET_ERR_MIGRATION_UNKNOWN_VM');
        assert.equal(await codeOf(model.cancelMigration('zz', 'o')), 'VNET_ERR_MIGRATION_NOT_FOUND');
        assert.deepEqual(model.listMigrations(), []);
      }));

    it('removes a fast-path link and announces it', () =>
      withModel(async ({ model }) => {
        await model.addFastPathLink('h-a', 'h-b', '', 'operator:x');
        const before = model.latestSeq();
        await model.removeFastPathLink('h-b', 'h-a', 'operator:x');
        assert.equal(model.getLink('h-a', 'h-b'), undefined);
        const removed = model.listEvents({ since: before, types: ['link-removed'] }).events;
        assert.equal(removed.length, 1);
        assert.ok(removed[0]!.type === 'link-removed' && removed[0]!.payload.a === 'h-a' && removed[0]!.payload.b === 'h-b');
      }));

    it('numbers events by one, pages them, and replays after since before live ones', () =>
      withModel(async ({ model }) => {
        await model.addFastPathLink('h-a', 'h-b', '', 'o');
        await model.addFastPathLink('h-b', 'h-c', '', 'o');
        const all = model.listEvents({ since: 0, limit: 1000 });
        const seqs = all.events.map((e) => e.seq);
        for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1);
        assert.equal(all.latestSeq, model.latestSeq());
        assert.equal(seqs.at(-1), model.latestSeq());
        const latest = model.latestSeq();
        assert.deepEqual(model.listEvents({ since: latest - 2, limit: 1 }).events.map((e) => e.seq), [latest - 1]);
        assert.ok(model.listEvents({ types: ['operator-action'] }).events.every((e) => e.type === 'operator-action'));
        const seen: number[] = [];
        const off = model.subscribe((e) => seen.push(e.seq), { since: latest - 3 });
        assert.deepEqual(seen, [latest - 2, latest - 1, latest]);
        await model.removeFastPathLink('h-a', 'h-b', 'o');
        const mid = model.latestSeq();
        off();
        await model.removeFastPathLink('h-b', 'h-c', 'o');
        assert.ok(model.latestSeq() > mid);
        // Live events followed the replay without a gap, and none came after unsubscribing.
        assert.deepEqual(seen, Array.from({ length: mid - latest + 3 }, (_, i) => latest - 2 + i));
      }));
  });
}
