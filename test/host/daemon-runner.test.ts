/**
 * `vnet daemon`'s host side: the daemon-config keys for migration
 * (`migration`, `ports[].guest`), and a daemon started from a config with its
 * migration agent, VM runtimes and channel listener — or, without TLS, an
 * agent that says why it cannot migrate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { GUEST_PROFILE_NAMES, migrationListenAddress, parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import type { MigrationReport } from '../../src/control/migration-control.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { PROFILE_NAMES } from '../../src/migration/guests/workload-profiles.ts';
import { initCa, issueHostCert } from '../../src/pki/certs.ts';

const logger = silentLogger();
const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01', guest: { profile: 'tpc-w', memoryMiB: 2, diskMiB: 1 } }] };

test('the config\'s guest profiles are the workload profiles', () => {
  assert.deepEqual([...GUEST_PROFILE_NAMES].sort(), [...PROFILE_NAMES].sort());
});

test('migration config: defaults, the listen port + 1000, strict keys', () => {
  const c = parseDaemonConfig({ ...base, listen: { host: '10.0.0.1', port: 7000 }, tls: { dir: '/x' }, ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01', guest: {} }] });
  assert.deepEqual(c.ports[0]!.guest, { profile: 'idle', memoryMiB: 16, diskMiB: 4 });
  assert.deepEqual(migrationListenAddress(c), { host: '10.0.0.1', port: 8000, advertise: undefined });
  assert.deepEqual(migrationListenAddress(parseDaemonConfig({ ...base, tls: { dir: '/x' }, migration: { host: '0.0.0.0', port: 9000, advertise: 'h1.example' } })), { host: '0.0.0.0', port: 9000, advertise: 'h1.example' });
  assert.deepEqual(migrationListenAddress(parseDaemonConfig(base)), { host: '127.0.0.1', port: 0, advertise: undefined });
  assert.equal(migrationListenAddress(parseDaemonConfig({ host: 's1', role: 'spoke', hub: { host: '10.0.0.9', port: 7000 } })), undefined);
  assert.throws(() => parseDaemonConfig({ ...base, migration: { host: '127.0.0.1', port: 9000 } }), { code: 'VNET_ERR_CONFIG', message: /migration.*needs tls/ });
  assert.throws(() => parseDaemonConfig({ ...base, listen: { host: '127.0.0.1', port: 65000 } }), { message: /migration.*above 65535/ });
  assert.throws(() => parseDaemonConfig({ ...base, ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01', guest: { profile: 'nope' } }] }), { message: /ports\[0\]\.guest\.profile/ });
  assert.throws(() => parseDaemonConfig({ ...base, ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01', guest: { memoryMiB: 16, extra: 1 } }] }), { code: 'VNET_ERR_CONFIG' });
});

test('hub failover config: a spoke\'s standby hub, a standby hub\'s trunk, liveness that cannot flap', () => {
  const spoke = { host: 's1', role: 'spoke', hub: { host: '10.0.0.1', port: 7000 }, hubId: 'h1' };
  const c = parseDaemonConfig({ ...spoke, standbyHub: { host: '10.0.0.2', port: 7000, id: 'h2' } });
  assert.deepEqual(c.standbyHub, { host: '10.0.0.2', port: 7000, id: 'h2' });
  assert.deepEqual([c.keepaliveMs, c.deadMs], [250, 1500]);
  // A standby hub is a hub that names the primary as its hub (the trunk).
  assert.equal(parseDaemonConfig({ ...base, hub: { host: '10.0.0.1', port: 7000 }, hubId: 'h0' }).hub?.port, 7000);
  assert.throws(() => parseDaemonConfig({ ...base, standbyHub: { host: '10.0.0.2', port: 7000, id: 'h2' } }), { code: 'VNET_ERR_CONFIG', message: /only a spoke has a standby hub/ });
  assert.throws(() => parseDaemonConfig({ ...spoke, hubId: undefined, standbyHub: { host: '10.0.0.2', port: 7000, id: 'h2' } }), { message: /hubId.*needs the primary hub's id/ });
  assert.throws(() => parseDaemonConfig({ ...spoke, standbyHub: { host: '10.0.0.2', port: 7000, id: 'h1' } }), { message: /standbyHub\.id.*cannot be the primary hub/ });
  assert.throws(() => parseDaemonConfig({ ...spoke, standbyHub: { host: '10.0.0.2', port: 7000 } }), { message: /standbyHub\.id/ });
  assert.throws(() => parseDaemonConfig({ ...spoke, keepaliveMs: 1000, deadMs: 1500 }), { message: /deadMs.*at least twice keepaliveMs/ });
});

test('a daemon with tls: its VMs have model guests, its migration channel listens, a prepare is answered with the address', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-host-runner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'h1');
  const running = await startDaemonFromConfig({ logger }, parseDaemonConfig({ ...base, tls: { dir } }));
  t.after(() => running.close());
  assert.equal(running.migrations.unavailable, undefined);
  const vm = running.migrations.vm('vm1');
  assert.ok(vm !== undefined);
  assert.equal(vm.guest!.memory.pageCount, 2 * 256);
  assert.equal(vm.guest!.disk?.blockCount, 256);
  const reports: MigrationReport[] = [];
  running.migrations.onReport((r) => reports.push(r));
  running.migrations.handle({ type: 'migrate-prepare', id: 'm1', vm: { mac: '02:00:00:00:00:02', port: 'vm2' }, from: 'h2' });
  assert.equal(reports[0]?.state, 'prepared');
  assert.equal(reports[0]?.address?.host, '127.0.0.1');
  assert.ok((reports[0]?.address?.port ?? 0) > 0);
  running.migrations.handle({ type: 'migrate-abort', id: 'm1' });
  assert.equal(reports.at(-1)?.state, 'aborted');
});

test('a daemon without tls: every migration command is answered failed, saying migration needs TLS', async (t) => {
  const running = await startDaemonFromConfig({ logger }, parseDaemonConfig(base));
  t.after(() => running.close());
  const reports: MigrationReport[] = [];
  running.migrations.onReport((r) => reports.push(r));
  running.migrations.handle({ type: 'migrate-start', id: 'm1', vm: { mac: '02:00:00:00:00:01', port: 'vm1' }, to: 'h2', address: { host: '127.0.0.1', port: 1 }, rule: 'xen' });
  assert.equal(reports[0]?.state, 'failed');
  assert.equal(reports[0]?.error?.code, 'VNET_ERR_HOST_MIGRATION_UNAVAILABLE');
  assert.match(reports[0]?.error?.message ?? '', /needs TLS/);
});

test('stream ports in the config: a socket path or qemu: {dir}; path and qemu for stream ports only; a QEMU VM needs qemu: {dir}', () => {
  const stream = { name: 'q1', type: 'stream', mac: '02:00:00:00:00:05' };
  const c = parseDaemonConfig({ ...base, qemu: { dir: '/run/vnet-q' }, ports: [{ ...stream, ip: '10.0.0.5/24', qemu: {} }] });
  assert.deepEqual(c.qemu, { dir: '/run/vnet-q', binary: 'qemu-system-x86_64', bootTimeoutMs: 120_000 });
  assert.deepEqual(c.ports[0]!.qemu, { memoryMiB: 128 });
  assert.equal(parseDaemonConfig({ ...base, ports: [{ ...stream, path: '/tmp/q1.sock' }] }).ports[0]!.path, '/tmp/q1.sock');
  assert.throws(() => parseDaemonConfig({ ...base, ports: [stream] }), { code: 'VNET_ERR_CONFIG', message: /ports\[0\]\.path.*needs a socket/ });
  assert.throws(() => parseDaemonConfig({ ...base, ports: [{ ...stream, path: '/tmp/q1.sock', qemu: {} }] }), { message: /qemu.*needs qemu: \{dir\}/ });
  assert.throws(() => parseDaemonConfig({ ...base, ports: [{ name: 'm', type: 'memory', mac: '02:00:00:00:00:06', path: '/tmp/x' }] }), { message: /stream ports only/ });
  assert.throws(() => parseDaemonConfig({ ...base, qemu: { dir: '/x' }, ports: [{ ...stream, qemu: { memoryMiB: 64 } }] }), { message: /ports\[0\]\.qemu\.memoryMiB/ });
});

test('a QEMU VM arriving (portKind stream): prepared on a stream port in qemu.dir on a host that runs QEMU VMs; refused, typed, on one that does not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-host-runner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'h1');
  const qdir = join(dir, 'q');
  const running = await startDaemonFromConfig({ logger }, parseDaemonConfig({ ...base, tls: { dir }, qemu: { dir: qdir }, ports: [{ name: 'q0', type: 'stream', mac: '02:00:00:00:00:07' }] }));
  t.after(() => running.close());
  assert.equal(running.daemon.port('q0')?.kind, 'stream', 'a configured stream port without qemu: listens for a QEMU started by someone else');
  const reports: MigrationReport[] = [];
  running.migrations.onReport((r) => reports.push(r));
  running.migrations.handle({ type: 'migrate-prepare', id: 'mq', vm: { mac: '02:00:00:00:00:08', port: 'q1', portKind: 'stream' }, from: 'h2' });
  assert.equal(reports[0]?.state, 'prepared', JSON.stringify(reports[0]));
  const port = running.daemon.port('q1') as { kind: string; path: string } | undefined;
  assert.equal(port?.kind, 'stream');
  assert.equal(port?.path, join(qdir, 'q1.sock'));
  running.migrations.handle({ type: 'migrate-abort', id: 'mq' });
  assert.equal(reports.at(-1)?.state, 'aborted');

  const plain = await startDaemonFromConfig({ logger }, parseDaemonConfig({ ...base, host: 'h1', tls: { dir } }));
  t.after(() => plain.close());
  const refused: MigrationReport[] = [];
  plain.migrations.onReport((r) => refused.push(r));
  plain.migrations.handle({ type: 'migrate-prepare', id: 'mq2', vm: { mac: '02:00:00:00:00:08', port: 'q1', portKind: 'stream' }, from: 'h2' });
  assert.equal(refused[0]?.state, 'failed');
  assert.equal(refused[0]?.error?.code, 'VNET_ERR_HOST_MIGRATION_PORT');
  assert.match(refused[0]?.error?.message ?? '', /runs no QEMU VMs/);
});
