import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';

/** reloadDaemon through a running daemon: all or nothing when a new port cannot be opened; a changed port replaced; its VM follows. */

const base = {
  host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 },
  ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01' }, { name: 'vm2', type: 'memory', mac: '02:00:00:00:00:02' }],
};

test('a new port that cannot be opened refuses the whole reload: no port added or removed, the log level unchanged', async (t) => {
  const logger = silentLogger();
  const running = await startDaemonFromConfig({ logger }, parseDaemonConfig(base));
  t.after(() => running.close());
  const next = parseDaemonConfig({
    ...base, logLevel: 'debug',
    ports: [base.ports[0], { name: 'vm3', type: 'memory', mac: '02:00:00:00:00:03' }, { name: 'vm4', type: 'tap', mac: '02:00:00:00:00:04', netns: 'vnet-no-such-ns' }],
  });
  const outcome = await running.reload(next, 'h1.yaml');
  assert.equal(outcome.applied, false);
  assert.ok(!outcome.applied && outcome.reason === 'ports' && /port vm4: .*namespace vnet-no-such-ns does not exist/.test(outcome.message), JSON.stringify(outcome));
  assert.deepEqual(running.daemon.facts().ports.map((p) => p.name).sort(), ['vm1', 'vm2']);
  assert.deepEqual(running.migrations.vms.map((v) => v.port).sort(), ['vm1', 'vm2']);
  assert.equal(logger.level, 'silent');
  assert.equal(running.config.ports.length, 2, 'the running configuration is still the old one');
});

test('a port whose MAC changed is replaced (a new port, its VM too); a removed port takes its VM with it; the next reload diffs against the applied one', async (t) => {
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig(base));
  t.after(() => running.close());
  const oldVm1 = running.daemon.port('vm1');
  const next = parseDaemonConfig({ ...base, ports: [{ ...base.ports[0], mac: '02:00:00:00:00:11' }] });
  const outcome = await running.reload(next, 'h1.yaml');
  assert.equal(outcome.applied, true);
  assert.notEqual(running.daemon.port('vm1'), oldVm1);
  assert.equal(running.daemon.facts().ports.find((p) => p.name === 'vm1')?.mac, '02:00:00:00:00:11');
  assert.equal(running.daemon.port('vm2'), undefined);
  assert.deepEqual(running.migrations.vms.map((v) => v.port), ['vm1']);
  assert.equal(running.config, next);
  const again = await running.reload(next, 'h1.yaml');
  assert.ok(again.applied && again.plan.portsReplaced.length === 0, 'nothing to do the second time');
});

test('a fixed setting refuses the reload; the rules of the same file are not applied', async (t) => {
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig(base));
  t.after(() => running.close());
  const outcome = await running.reload(parseDaemonConfig({ ...base, host: 'h9', rules: [{ id: 'r', priority: 1, src: 'any', dst: 'any', action: 'drop' }] }), 'h1.yaml');
  assert.ok(!outcome.applied && outcome.reason === 'fixed-settings' && /h1\.yaml: host cannot change/.test(outcome.message), JSON.stringify(outcome));
  assert.ok(!running.daemon.table.rules().some((r) => r.id === 'r'));
});
