/**
 * Starting a daemon and what it refuses, with typed errors a user can act on
 * (a spoke without a hub, a duplicate port, a port on a closed daemon, TLS or
 * a control channel without the deployment's credentials), and the wall
 * clock its traffic reports carry: the injected clock's, not the machine's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { parseDaemonConfig, type DaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const network = new MemoryNetwork();
const transport = (host: string): MemoryTransport => new MemoryTransport({ logger }, { localHost: host, network });

describe('daemon start and its typed refusals', () => {
  it('refuses a spoke without a hub address (SpokeWithoutHubError)', async () => {
    await assert.rejects(Daemon.start({ logger, transport: transport('s1') }, { hostId: 's1', role: 'spoke' }), {
      name: 'SpokeWithoutHubError',
      code: 'VNET_ERR_SPOKE_WITHOUT_HUB',
      message: /s1 is a spoke but has no hub/,
    });
  });

  it('refuses a second port of the same name (DuplicatePortError) and any port once closed (DaemonClosedError)', async () => {
    const d = await Daemon.start({ logger, transport: transport('h1') }, { hostId: 'h1', role: 'hub' });
    d.addPort(new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:10:01') }));
    assert.throws(() => d.addPort(new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:10:02') })), { name: 'DuplicatePortError', code: 'VNET_ERR_DUPLICATE_PORT' });
    await d.close();
    assert.throws(() => d.addPort(new MemoryPort({ name: 'vm2', mac: parseMac('02:00:00:00:10:03') })), { name: 'DaemonClosedError', code: 'VNET_ERR_DAEMON_CLOSED' });
  });

  it('stamps traffic snapshots with the injected clock\'s wall time', async () => {
    const wallStartMs = 1_800_000_000_000;
    const clock = new ManualClock(0, { wallStartMs });
    const d = await Daemon.start({ logger, transport: transport('h2'), clock }, { hostId: 'h2', role: 'hub' });
    const a = new MemoryPort({ name: 'vma', mac: parseMac('02:00:00:00:20:01') });
    const b = new MemoryPort({ name: 'vmb', mac: parseMac('02:00:00:00:20:02') });
    const atB: Buffer[] = [];
    b.onDeliver((f) => atB.push(f));
    d.addPort(a);
    d.addPort(b);
    a.transmit(testFrame(b.mac, a.mac, 1));
    await waitFor(() => atB.length === 1, 'the frame at vmb');
    clock.advance(1500);
    const first = d.takeTrafficSnapshot();
    assert.equal(first.startMs, wallStartMs);
    assert.equal(first.endMs, wallStartMs + 1500);
    assert.equal(first.entries.length, 1);
    clock.advance(500);
    const second = d.takeTrafficSnapshot();
    assert.deepEqual([second.startMs, second.endMs], [wallStartMs + 1500, wallStartMs + 2000]);
    await d.close();
  });
});

describe('daemon runner: missing credentials are typed errors', () => {
  const base = (extra: Record<string, unknown>): DaemonConfig => parseDaemonConfig({ host: 'h3', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ...extra });

  it('a control channel whose CA file cannot be read (MissingCaError naming the file)', async () => {
    const config = base({ controller: { url: 'wss://127.0.0.1:1/control', caFile: '/nonexistent/vnet/ca.pem', joinToken: 'x' } });
    await assert.rejects(startDaemonFromConfig({ logger }, config), (err: Error & { code?: string; file?: string }) => {
      assert.equal(err.code, 'VNET_ERR_NO_CA');
      assert.equal(err.file, '/nonexistent/vnet/ca.pem');
      assert.match(err.message, /cannot read the deployment CA/);
      return true;
    });
  });

  it('a control channel with no CA configured at all (MissingCaError)', async () => {
    const config = base({ controller: { url: 'wss://127.0.0.1:1/control', caFile: '/unused', joinToken: 'x' } });
    const { caFile: _unused, ...controller } = config.controller!;
    await assert.rejects(startDaemonFromConfig({ logger }, { ...config, controller: { ...controller } }), { code: 'VNET_ERR_NO_CA', message: /tls: \{dir\} or controller.caFile/ });
  });

  it('TLS links with no credentials directory (MissingHostCredentialsError)', async () => {
    const config = { ...base({}), transport: 'tls' as const };
    await assert.rejects(startDaemonFromConfig({ logger }, config), { code: 'VNET_ERR_NO_HOST_CREDENTIALS', message: /transport tls needs tls: \{dir\}/ });
  });
});
