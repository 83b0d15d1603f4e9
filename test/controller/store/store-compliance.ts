import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ControllerStore } from '../../../src/controller/store/store.ts';
import type { TrafficSampleRecord } from '../../../src/controller/store/records.ts';
import { validateManifest } from '../../../src/images/manifest.ts';
import type { StoreFactory } from '../../helpers/store-factories.ts';

/**
 * One suite for every store backend (SQLite file, etcd): what the controller
 * relies on — round trips, one-transaction writes, the cascade of a host's
 * removal, open migrations, ordered ids — and that everything `committed()`
 * covers is there when the store is opened anew (a restart, or another
 * replica taking over).
 */


const mac = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;

async function settled(store: ControllerStore): Promise<void> {
  await store.committed();
}

export function storeCompliance(label: string, factory: StoreFactory): void {
  test(`${label}: hosts, VMs, links, rules and versions round-trip, and survive a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    store.upsertHost({ id: 'b', site: 's', role: 'spoke', addresses: [{ transport: 'tls', host: '127.0.0.1', port: 1 }] });
    store.upsertHost({ id: 'a', site: 's', role: 'hub', addresses: [] });
    store.setHostConnected('b', true, 100);
    store.upsertVm({ mac: mac(1), name: 'vm1', ip: '10.0.0.1', host: 'b', state: 'unknown', source: 'deployment', updatedMs: 1 });
    store.upsertVm({ mac: mac(1), name: undefined, ip: undefined, host: 'a', state: 'running', source: 'learned', updatedMs: 2 });
    assert.equal(store.putLink({ a: 'b', b: 'a', kind: 'fast-path', requestedBy: 'operator:x', reason: 'test' }, 5), true);
    assert.equal(store.putLink({ a: 'a', b: 'b', kind: 'fast-path', requestedBy: 'adaptation', reason: 'again' }, 6), false);
    store.recordAck('a', 'rules', 3);
    store.putVersions({ ...store.getVersions('a'), rulesVersion: 4, rulesDigest: 'd' });

    const check = (s: ControllerStore): void => {
      assert.deepEqual(s.listHosts().map((h) => [h.id, h.role, h.connected, h.firstSeenMs]), [['a', 'hub', false, undefined], ['b', 'spoke', true, 100]]);
      assert.deepEqual(s.getHost('b')?.addresses, [{ transport: 'tls', host: '127.0.0.1', port: 1 }]);
      const vm = s.getVm(mac(1));
      assert.deepEqual([vm?.name, vm?.host, vm?.state], ['vm1', 'a', 'running']);
      assert.deepEqual(s.listVmsOnHost('a').map((v) => v.mac), [mac(1)]);
      assert.deepEqual(s.listLinks('fast-path').map((l) => [l.a, l.b, l.reason, l.createdMs]), [['a', 'b', 'again', 5]]);
      assert.deepEqual([s.getVersions('a').rulesAcked, s.getVersions('a').rulesVersion, s.getVersions('a').rulesDigest], [3, 4, 'd']);
    };
    check(store);
    await settled(store);
    const again = await reopen();
    check(again);
    assert.equal(again.deleteLink('b', 'a', 'fast-path'), true);
    assert.equal(again.deleteLink('b', 'a', 'fast-path'), false);
  });

  test(`${label}: removing a host takes its versions, links, facts and credential with it`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    store.upsertHost({ id: 'a', site: undefined, role: 'hub', addresses: [] });
    store.upsertHost({ id: 'b', site: undefined, role: 'spoke', addresses: [] });
    store.putLink({ a: 'a', b: 'b', kind: 'backbone', requestedBy: 'deployment', reason: 'star' }, 1);
    store.putVersions({ ...store.getVersions('b'), rulesVersion: 3, rulesDigest: 'd' });
    store.recordAck('b', 'links', 2);
    store.access.setHostCredential('b', 'hash-b', 1);
    store.recordHostFacts({ hostId: 'b', links: [{ peer: 'a', kind: 'backbone', state: 'up', txFrames: 1, txBytes: 2, rxFrames: 3, rxBytes: 4, txDropped: 0, decodeErrors: 0, reconnects: 0 }] } as never, 5);
    assert.equal(store.getHost('b')?.facts?.links[0]?.state, 'up');
    store.removeHost('b');
    const check = (s: ControllerStore): void => {
      assert.deepEqual(s.listHosts().map((h) => h.id), ['a']);
      assert.deepEqual([s.listLinks().length, s.getVersions('b').rulesVersion, s.getVersions('b').linksAcked, s.getHost('b')], [0, 0, 0, undefined]);
      assert.equal(s.access.hostCredential('b'), undefined);
    };
    check(store);
    await settled(store);
    check(await reopen());
  });

  test(`${label}: a host's facts are parsed once while they stay as stored: read back equal, shared and frozen; a change reads the new ones, also after a rolled-back transaction`, async (t) => {
    const { store } = await factory.fresh(t);
    store.upsertHost({ id: 'b', site: undefined, role: 'spoke', addresses: [] });
    const link = { peer: 'a', kind: 'backbone', state: 'up', txFrames: 1, txBytes: 2, rxFrames: 3, rxBytes: 4, txDropped: 0, decodeErrors: 0, reconnects: 0 };
    store.recordHostFacts({ hostId: 'b', links: [link] } as never, 5);
    const first = store.getHost('b')!.facts!;
    assert.equal(first.links[0]?.state, 'up');
    assert.equal(store.listHosts()[0]!.facts, first, 'the same parsed facts, not parsed again');
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.links) && Object.isFrozen(first.links[0]), 'frozen: every reader shares them');
    assert.throws(() => { (first.links as unknown as unknown[]).push(link); }, TypeError);
    store.recordHostFacts({ hostId: 'b', links: [{ ...link, state: 'down' }] } as never, 6);
    assert.equal(store.getHost('b')!.facts!.links[0]?.state, 'down', 'changed facts are read as stored');
    assert.throws(() => store.transaction(() => {
      store.recordHostFacts({ hostId: 'b', links: [{ ...link, state: 'up' }] } as never, 7);
      assert.equal(store.getHost('b')!.facts!.links[0]?.state, 'up');
      throw new Error('roll back');
    }), /roll back/);
    assert.equal(store.getHost('b')!.facts!.links[0]?.state, 'down', 'the rolled-back write is not read');
  });

  test(`${label}: a transaction that throws leaves none of its writes, then or after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    store.upsertHost({ id: 'a', site: undefined, role: 'hub', addresses: [] });
    assert.throws(() => store.transaction(() => {
      store.upsertVm({ mac: mac(9), name: undefined, ip: undefined, host: 'a', state: 'running', source: 'learned', updatedMs: 1 });
      store.removeHost('a');
      throw new Error('planned failure');
    }), /planned failure/);
    assert.equal(store.getVm(mac(9)), undefined);
    assert.equal(store.getHost('a')?.id, 'a');
    await settled(store);
    const again = await reopen();
    assert.equal(again.getVm(mac(9)), undefined);
    assert.equal(again.getHost('a')?.id, 'a');
  });

  test(`${label}: migrations: the coordinator's record, the open ones, durable steps; ids keep rising after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    const base = { vmMac: mac(1), fromHost: 'a', toHost: 'b', requestedBy: 'operator:x', finishedMs: undefined, error: undefined };
    const run = (step: string) => ({ step }) as never;
    store.putMigration({ ...base, id: 'm1', state: 'running', startedMs: 1, run: run('transfer') });
    store.putMigration({ ...base, id: 'm2', state: 'aborting', startedMs: 2, run: run('aborting') });
    store.putMigration({ ...base, id: 'm3', state: 'done', startedMs: 3, finishedMs: 9, run: run('cleanup') });
    store.putMigration({ ...base, id: 'm4', state: 'done', startedMs: 4, finishedMs: 9, run: run('done') });
    const first = store.durableTransaction(() => store.appendMigrationStep({ migrationId: 'm1', step: 'commit', state: 'ok', atMs: 5, detail: { at: 'commit point' } }));
    await settled(store);
    const again = await reopen();
    assert.deepEqual(again.listOpenMigrations().map((m) => m.id), ['m1', 'm2', 'm3']);
    assert.deepEqual(again.getMigration('m1')?.run, { step: 'transfer' });
    assert.deepEqual(again.migrationSteps('m1').map((s) => [s.id, s.step, s.detail]), [[first, 'commit', { at: 'commit point' }]]);
    const second = again.appendMigrationStep({ migrationId: 'm1', step: 'resume', state: 'ok', atMs: 6, detail: {} });
    assert.ok(second > first, `step ids keep rising (${first} then ${second})`);
    const e1 = again.appendEvent({ atMs: 1, type: 'x', data: { n: 1 } });
    const e2 = again.appendEvent({ atMs: 2, type: 'y', data: { n: 2 } });
    assert.deepEqual(again.listEvents(e1 - 1).map((e) => [e.id, e.type]), [[e1, 'x'], [e2, 'y']]);
  });

  test(`${label}: access tables: tokens used once, revoked, credentials and certificates`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    store.access.insertJoinToken({ id: 'j1', hash: 'h', host: undefined, createdMs: 1, expiresMs: undefined, singleUse: true, usedMs: undefined, usedBy: undefined, revokedMs: undefined });
    assert.equal(store.access.markJoinTokenUsed('j1', 'a', 2, true), true);
    assert.equal(store.access.markJoinTokenUsed('j1', 'b', 3, true), false);
    store.access.insertApiToken({ id: 't1', hash: 'abc', label: 'ops', scope: 'read', createdMs: 1 });
    assert.equal(store.access.revokeApiToken('t1', 4), true);
    store.access.touchHostCertificate('h1', 'AA:BB', 5);
    assert.equal(store.access.revokeHostCertificates('h1', 6), 1);
    await settled(store);
    const again = await reopen();
    assert.equal(again.access.findJoinTokenByHash('h')?.usedBy, 'a');
    assert.deepEqual([again.access.findApiTokenByHash('abc')?.scope, again.access.findApiTokenByHash('abc')?.revokedMs], ['read', 4]);
    assert.equal(again.access.hostHasIdentity('h1'), false);
    assert.equal(again.access.hostCertificate('h1', 'AA:BB')?.revokedMs, 6);
  });

  test(`${label}: image versions: written once (a different manifest is a conflict), the latest found, replicas' progress, after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    const digest = (c: string): string => c.repeat(16) + '-' + c.repeat(64);
    const manifest = (version: number, chunk: string) => validateManifest({ imageId: 'debian', version, chunkSize: 4, size: 8, chunks: [digest('a'), digest(chunk)], accessOrder: [1] });
    assert.equal(store.images.insertVersion({ manifest: manifest(1, 'b'), originSite: 'east', publishedMs: 1 }), true);
    assert.equal(store.images.insertVersion({ manifest: manifest(1, 'b'), originSite: 'east', publishedMs: 2 }), false);
    assert.throws(() => store.images.insertVersion({ manifest: manifest(1, 'c'), originSite: 'east', publishedMs: 3 }), { code: 'VNET_ERR_CONFLICT' });
    store.images.insertVersion({ manifest: manifest(2, 'c'), originSite: 'west', publishedMs: 4 });
    store.images.putReplica({ imageId: 'debian', version: 2, site: 'west', held: 2, total: 2, updatedMs: 4 });
    store.images.putReplica({ imageId: 'debian', version: 2, site: 'east', held: 1, total: 2, updatedMs: 5 });
    await settled(store);
    const again = await reopen();
    assert.deepEqual(again.images.latestVersion('debian')?.manifest, manifest(2, 'c'));
    assert.deepEqual(again.images.getVersion('debian', 1), { manifest: manifest(1, 'b'), originSite: 'east', publishedMs: 1 });
    assert.deepEqual(again.images.listVersions().map((v) => v.manifest.version), [1, 2]);
    assert.deepEqual(again.images.listReplicas('debian').map((r) => [r.site, r.held, r.total]), [['east', 1, 2], ['west', 2, 2]]);
    assert.equal(again.images.latestVersion('other'), undefined);
  });

  test(`${label}: image versions deleted: the version and its replicas' rows gone, the latest moves back, durable after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    const digest = (c: string): string => c.repeat(16) + '-' + c.repeat(64);
    const manifest = (version: number, chunk: string) => validateManifest({ imageId: 'debian', version, chunkSize: 4, size: 8, chunks: [digest('a'), digest(chunk)], accessOrder: [] });
    for (const [v, c] of [[1, 'b'], [2, 'c'], [3, 'd']] as const) {
      store.images.insertVersion({ manifest: manifest(v, c), originSite: 'east', publishedMs: v });
      store.images.putReplica({ imageId: 'debian', version: v, site: 'west', held: 1, total: 2, updatedMs: v });
    }
    store.transaction(() => assert.equal(store.images.deleteVersion('debian', 3, 30), true));
    assert.equal(store.images.deleteVersion('debian', 3, 31), false);
    assert.equal(store.images.deleteVersion('other', 1, 31), false);
    store.transaction(() => store.images.deleteVersion('debian', 1, 32));
    await settled(store);
    const again = await reopen();
    assert.deepEqual(again.images.listVersions().map((v) => v.manifest.version), [2]);
    assert.equal(again.images.latestVersion('debian')?.manifest.version, 2);
    assert.deepEqual(again.images.listReplicas('debian').map((r) => r.version), [2]);
    assert.equal(again.images.getVersion('debian', 3), undefined);
  });

  test(`${label}: image version numbers are never reused: deleted ones remembered with when, refused again naming the next, also once the whole image is gone, after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    const digest = (c: string): string => c.repeat(16) + '-' + c.repeat(64);
    const manifest = (imageId: string, version: number, chunk: string) => validateManifest({ imageId, version, chunkSize: 4, size: 8, chunks: [digest('a'), digest(chunk)], accessOrder: [] });
    assert.equal(store.images.nextVersion('debian'), 1);
    for (const [v, c] of [[1, 'b'], [2, 'c']] as const) store.images.insertVersion({ manifest: manifest('debian', v, c), originSite: 'east', publishedMs: v });
    store.images.insertVersion({ manifest: manifest('other', 7, 'b'), originSite: 'east', publishedMs: 7 });
    assert.equal(store.images.nextVersion('debian'), 3);
    // The latest deleted: its number is not the next again, and not publishable, whatever the content.
    store.transaction(() => store.images.deleteVersion('debian', 2, 1_000));
    assert.equal(store.images.nextVersion('debian'), 3);
    for (const c of ['c', 'd']) {
      assert.throws(() => store.images.insertVersion({ manifest: manifest('debian', 2, c), originSite: 'east', publishedMs: 1_001 }), {
        code: 'VNET_ERR_IMAGE_VERSION_DELETED', message: /image debian version 2 was published before and deleted at 1970-01-01T00:00:01\.000Z: .* publish as version 3/,
      });
    }
    assert.equal(store.images.insertVersion({ manifest: manifest('debian', 3, 'd'), originSite: 'east', publishedMs: 1_002 }), true);
    // The whole image deleted: numbering continues.
    store.transaction(() => { store.images.deleteVersion('debian', 1, 2_000); store.images.deleteVersion('debian', 3, 2_000); });
    assert.deepEqual(store.images.listVersions().map((v) => v.manifest.imageId), ['other']);
    assert.equal(store.images.nextVersion('debian'), 4);
    await settled(store);

    const again = await reopen();
    assert.deepEqual(again.images.listDeletedVersions('debian'), [
      { imageId: 'debian', version: 1, publishedMs: 1, deletedMs: 2_000 },
      { imageId: 'debian', version: 2, publishedMs: 2, deletedMs: 1_000 },
      { imageId: 'debian', version: 3, publishedMs: 1_002, deletedMs: 2_000 },
    ]);
    assert.deepEqual(again.images.listDeletedVersions().map((d) => d.imageId), ['debian', 'debian', 'debian']);
    assert.equal(again.images.nextVersion('debian'), 4);
    assert.equal(again.images.nextVersion('other'), 8);
    assert.throws(() => again.images.insertVersion({ manifest: manifest('debian', 1, 'b'), originSite: 'east', publishedMs: 3_000 }), { code: 'VNET_ERR_IMAGE_VERSION_DELETED', message: /version 1 .* publish as version 4/ });
    assert.equal(again.images.insertVersion({ manifest: manifest('debian', 4, 'b'), originSite: 'east', publishedMs: 3_001 }), true);
    assert.equal(again.images.nextVersion('debian'), 5);
  });

  test(`${label}: traffic samples and topologies: inserted, pruned, the latest topology found after a reopen`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    store.insertTrafficSamples([1, 2, 3].map((n) => ({ host: 'a', startMs: n * 10, endMs: n * 10 + 10, src: mac(n), dst: mac(n + 1), frames: n, bytes: n * 100 })));
    assert.equal(store.pruneTraffic(25), 1);
    store.insertTopology({ atMs: 1, kind: 'ring', changed: true, body: { edges: 1 } });
    store.insertTopology({ atMs: 2, kind: 'mesh', changed: true, body: { edges: 2 } });
    await settled(store);
    const again = await reopen();
    assert.deepEqual(again.trafficSince(0).map((s) => s.frames), [2, 3]);
    assert.deepEqual([again.latestTopology()?.kind, again.latestTopology()?.body], ['mesh', { edges: 2 }]);
  });

  test(`${label}: a traffic report is one record (one row, one etcd key) whatever its pairs, read back whole and in order`, async (t) => {
    const { store, reopen } = await factory.fresh(t);
    const report = (host: string, n: number): TrafficSampleRecord[] =>
      Array.from({ length: n }, (_, i) => ({ host, startMs: 100, endMs: 200, src: mac(i), dst: mac(i + 1), frames: i, bytes: i * 10 }));
    store.insertTrafficSamples([...report('a', 500), ...report('b', 3)]);
    const records = (s: ControllerStore): number => (s.db.prepare('SELECT count(*) AS n FROM traffic_reports').get() as { n: number }).n;
    assert.equal(records(store), 2);
    await settled(store);
    const again = await reopen();
    assert.equal(records(again), 2);
    const back = again.trafficSince(0);
    assert.deepEqual(back.filter((x) => x.host === 'a').map((x) => x.frames), Array.from({ length: 500 }, (_, i) => i));
    assert.deepEqual(back.filter((x) => x.host === 'b').map((x) => [x.src, x.dst, x.bytes]), [[mac(0), mac(1), 0], [mac(1), mac(2), 10], [mac(2), mac(3), 20]]);
    assert.equal(again.pruneTraffic(201), 503);
    assert.equal(again.trafficSince(0).length, 0);
  });
}
