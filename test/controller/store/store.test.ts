import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { openStore } from '../../../src/controller/store/store.ts';
import { applyMigrations, schemaVersionOf } from '../../../src/controller/store/migrations.ts';
import { SCHEMA_MIGRATIONS, SCHEMA_VERSION } from '../../../src/controller/store/schema.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a new database is created in WAL mode at the newest schema version', (t) => {
  const path = join(tempDir(t), 'vnet.db');
  const store = openStore({ path });
  t.after(() => store.close());
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(schemaVersionOf(store.db), SCHEMA_VERSION);
  assert.deepEqual(store.integrityCheck(), ['ok']);
});

test('migrations are applied at start on an old-version database, keeping its rows', (t) => {
  const path = join(tempDir(t), 'old.db');
  const old = new BetterSqlite3(path);
  applyMigrations(old, SCHEMA_MIGRATIONS.filter((m) => m.version === 1));
  assert.equal(schemaVersionOf(old), 1);
  old.prepare(`INSERT INTO hosts (id, site, role) VALUES ('h1', 'il', 'hub')`).run();
  old.close();

  const store = openStore({ path });
  t.after(() => store.close());
  assert.equal(schemaVersionOf(store.db), SCHEMA_VERSION);
  assert.equal(store.getHost('h1')?.role, 'hub');
  // Tables of version 2 exist and work.
  const id = store.appendEvent({ atMs: 1, type: 'test', data: { a: 1 } });
  assert.deepEqual(store.listEvents(0).map((e) => e.id), [id]);
  store.access.insertApiToken({ id: 't1', hash: 'abc', label: 'ops', scope: 'read', createdMs: 1 });
  assert.equal(store.access.findApiTokenByHash('abc')?.scope, 'read');
});

test('a database newer than the program is refused', (t) => {
  const path = join(tempDir(t), 'new.db');
  const db = new BetterSqlite3(path);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(() => openStore({ path }), { code: 'VNET_ERR_STORE' });
});

test('a failing migration leaves the database at the previous version', (t) => {
  const path = join(tempDir(t), 'fail.db');
  const db = new BetterSqlite3(path);
  t.after(() => db.close());
  const bad = [...SCHEMA_MIGRATIONS.filter((m) => m.version === 1), { version: 2, name: 'broken', sql: 'CREATE TABLE x (a INT); SELECT * FROM nowhere;' }];
  assert.throws(() => applyMigrations(db, bad), { code: 'VNET_ERR_SCHEMA_MIGRATION' });
  assert.equal(schemaVersionOf(db), 1);
  assert.deepEqual(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'x'`).all(), []);
});

// Round trips, cascades, open migrations and access tables: store-compliance.ts, run on SQLite and on etcd.

test('after kill -9 in the middle of a write loop the database is sound and every committed transaction is whole', async (t) => {
  const path = join(tempDir(t), 'crash.db');
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'fixtures', 'store-writer.ts'), path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let lastCommitted = 0;
  let buffered = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`writer committed only ${lastCommitted} transactions in 20 s`)), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const n = Number(line.replace('committed ', ''));
        if (Number.isInteger(n)) lastCommitted = Math.max(lastCommitted, n);
      }
      // Let it run a while, then kill it at an arbitrary point (it is writing continuously).
      if (lastCommitted >= 300) {
        clearTimeout(deadline);
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => { clearTimeout(deadline); resolve(); });
  });
  assert.equal(await exited, 'SIGKILL');

  const store = openStore({ path });
  t.after(() => store.close());
  assert.deepEqual(store.integrityCheck(), ['ok']);
  const perTx = store.db.prepare('SELECT host, sum(json_array_length(entries)) AS n FROM traffic_reports GROUP BY host').all() as Array<{ host: string; n: number }>;
  const audits = new Set((store.db.prepare('SELECT target FROM audit_log').all() as Array<{ target: string }>).map((r) => r.target));
  assert.ok(perTx.length >= lastCommitted, `${perTx.length} transactions in the database, ${lastCommitted} reported committed`);
  for (const { host, n } of perTx) {
    assert.equal(n, 20, `transaction ${host} is partial: ${n} of 20 rows`);
    assert.ok(audits.has(host), `transaction ${host} lost its audit row`);
  }
  assert.equal(audits.size, perTx.length);
  // Every committed transaction survived, numbered 1..k without holes.
  const ids = perTx.map((r) => Number(r.host.slice(3))).sort((a, b) => a - b);
  assert.equal(ids[ids.length - 1], ids.length);
});

test('migrations keep the coordinator\'s record; the open ones are listed; a durable transaction leaves synchronous as it was', (t) => {
  const store = openStore({ path: join(tempDir(t), 'vnet.db') });
  t.after(() => store.close());
  const base = { vmMac: '02:00:00:00:00:01', fromHost: 'a', toHost: 'b', requestedBy: 'operator:x', finishedMs: undefined, error: undefined };
  const run = (step: string) => ({ step }) as never;
  store.putMigration({ ...base, id: 'm1', state: 'running', startedMs: 1, run: run('transfer') });
  store.putMigration({ ...base, id: 'm2', state: 'aborting', startedMs: 2, run: run('aborting') });
  store.putMigration({ ...base, id: 'm3', state: 'done', startedMs: 3, finishedMs: 9, run: run('cleanup') });
  store.putMigration({ ...base, id: 'm4', state: 'done', startedMs: 4, finishedMs: 9, run: run('done') });
  store.putMigration({ ...base, id: 'm5', state: 'cancelled', startedMs: 5, finishedMs: 9, error: 'cancelled by x', run: run('aborted') });
  assert.deepEqual(store.listOpenMigrations().map((m) => m.id), ['m1', 'm2', 'm3']);
  assert.deepEqual(store.getMigration('m1')?.run, { step: 'transfer' });
  store.putMigration({ ...base, id: 'm1', state: 'done', startedMs: 1, finishedMs: 10, run: run('done') });
  assert.deepEqual([store.getMigration('m1')?.state, store.getMigration('m1')?.finishedMs, store.getMigration('m5')?.error], ['done', 10, 'cancelled by x']);
  const before = store.db.pragma('synchronous', { simple: true });
  store.durableTransaction(() => store.appendMigrationStep({ migrationId: 'm1', step: 'commit', state: 'ok', atMs: 5, detail: {} }));
  assert.equal(store.db.pragma('synchronous', { simple: true }), before);
  assert.deepEqual(store.migrationSteps('m1').map((s) => [s.step, s.atMs]), [['commit', 5]]);
});

test('API tokens made before scopes existed keep the operator scope; the access tables of version 5 exist', (t) => {
  const path = join(tempDir(t), 'v4.db');
  const old = new BetterSqlite3(path);
  applyMigrations(old, SCHEMA_MIGRATIONS.filter((m) => m.version <= 4));
  old.prepare(`INSERT INTO api_tokens (id, hash, label, created_ms) VALUES ('t0', 'h0', 'admin', 1)`).run();
  old.close();
  const store = openStore({ path });
  t.after(() => store.close());
  assert.equal(store.access.findApiTokenByHash('h0')?.scope, 'operator');
  store.access.touchHostCertificate('h1', 'AA:BB', 5);
  assert.equal(store.access.hostHasIdentity('h1'), true);
  assert.equal(store.access.revokeHostCertificates('h1', 6), 1);
  assert.equal(store.access.hostHasIdentity('h1'), false);
  assert.equal(store.access.hostCertificate('h1', 'AA:BB')?.revokedMs, 6);
});
