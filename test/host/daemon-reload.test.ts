import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { realClock } from '../../src/common/clock.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { openConfiguredPort } from '../../src/host/configured-port.ts';
import { addConfiguredPort, reloadDaemon } from '../../src/host/daemon-reload.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { MigrationAgent } from '../../src/host/migration-agent.ts';
import { MigrationChannelListener } from '../../src/host/migration-channel.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';

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

test('a port whose VM is in migration is neither removed nor replaced: the reload is refused, named, and nothing changes', async (t) => {
  const logger = silentLogger();
  const config = parseDaemonConfig(base);
  const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'h1', network: new MemoryNetwork() }) }, { hostId: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  const pki = testPki();
  const creds = { ...pki.host('h1'), ca: pki.ca };
  const channel = await MigrationChannelListener.listen({ logger, clock: realClock }, { ...creds, host: '127.0.0.1', port: 0 });
  const migrations = new MigrationAgent({ daemon, logger, clock: realClock, channel, credentials: creds });
  // The destination accepts the TCP connection and never answers: the source's migration stays under way until the test ends it.
  const held: Socket[] = [];
  const silent = createServer((s) => { held.push(s); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await migrations.close();
    for (const s of held) s.destroy();
    silent.close();
    await daemon.close();
  });
  const target = { logger, daemon, migrations, defaultLogLevel: 'info' };
  for (const spec of config.ports) addConfiguredPort(target, spec, await openConfiguredPort(logger, spec));
  const vm1 = daemon.port('vm1');
  const { port } = silent.address() as AddressInfo;
  migrations.handle({ type: 'migrate-start', id: 'm1', vm: { mac: '02:00:00:00:00:01', port: 'vm1' }, to: 'h2', address: { host: '127.0.0.1', port }, rule: 'xen' });
  assert.equal(migrations.migrationOf('vm1'), 'm1');

  const removed = await reloadDaemon(target, config, parseDaemonConfig({ ...base, ports: [base.ports[1]] }), 'h1.yaml');
  assert.ok(!removed.applied && removed.reason === 'migrating' && /h1\.yaml: port vm1: its VM is in migration m1/.test(removed.message), JSON.stringify(removed));
  const replaced = await reloadDaemon(target, config, parseDaemonConfig({ ...base, ports: [{ ...base.ports[0], mac: '02:00:00:00:00:11' }, base.ports[1]] }), 'h1.yaml');
  assert.ok(!replaced.applied && replaced.reason === 'migrating', JSON.stringify(replaced));
  assert.equal(daemon.port('vm1'), vm1, 'the port is the same');
  assert.equal(migrations.vm('vm1')?.port, 'vm1', 'its VM is still registered');
  // The other port can still go: only the migrating one is held.
  const other = await reloadDaemon(target, config, parseDaemonConfig({ ...base, ports: [base.ports[0]] }), 'h1.yaml');
  assert.ok(other.applied && other.plan.portsRemoved.includes('vm2') && other.qemu.stopped.length === 0, JSON.stringify(other));
  assert.equal(daemon.port('vm2'), undefined);
});
