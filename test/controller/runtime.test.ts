import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { startControllerProcess } from '../../src/controller/launch.ts';
import { startController, type ControllerComponents } from '../../src/controller/runtime.ts';
import { openStore } from '../../src/controller/store/store.ts';
import { metricValue, testDeployment } from './fixtures/controller-harness.ts';
import { testPki } from './fixtures/test-pki.ts';

/** A controller on port 0 over an in-memory store, its update timer on a manual clock. */
async function start(t: { after(fn: () => Promise<void> | void): void }, extra: Partial<ControllerComponents> = {}) {
  const pki = testPki();
  const clock = new ManualClock();
  const store = openStore({ path: ':memory:' });
  const registry = new Registry();
  const controller = await startController({ logger: silentLogger(), registry, clock, store, ...extra }, {
    deployment: testDeployment(), control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } }, pingIntervalMs: 60_000,
  });
  t.after(async () => { await controller.close(); store.close(); });
  return { controller, clock, store, registry };
}

/** Break the store under the loop: the next period's pruning fails (a stand-in for any bug in a period). */
function breakStore(store: ReturnType<typeof openStore>): void {
  store.db.exec('DROP TABLE traffic_reports');
}

test('an error in an update period reaches onError (tests fail on it), and tick() throws it to its caller', async (t) => {
  const errors: Array<{ err: unknown; where: string }> = [];
  const { controller, clock, store } = await start(t, { onError: (err, where) => { errors.push({ err, where }); } });
  clock.advance(100);
  assert.equal(errors.length, 0, 'a sound period');
  breakStore(store);
  clock.advance(100);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.where, 'update period');
  assert.match(String(errors[0]!.err), /traffic_reports/);
  assert.throws(() => controller.tick(), /traffic_reports/);
});

test('without onError the process logs the error, counts it and keeps running its periods', async (t) => {
  const { clock, store, registry } = await start(t);
  breakStore(store);
  clock.advance(100);
  clock.advance(100);
  assert.equal(await metricValue(registry, 'vnet_controller_errors_total', { where: 'update period' }), 2);
});

test('a controller process without a deployment CA refuses to start, saying how to make one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-noca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tlsDir = join(dir, 'certs');
  await assert.rejects(
    startControllerProcess({ logger: silentLogger() }, { deployment: testDeployment(), dbPath: join(dir, 'vnet.db'), tlsDir, tokenFile: join(dir, 'token') }),
    (err: Error & { code?: string }) => err.code === 'VNET_ERR_NO_CA' && err.message.includes(`vnet certs init --dir ${tlsDir}`),
  );
});
