import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, parseMac } from '../../src/common/mac.ts';
import { generateAdminToken } from '../../src/dataplane/admin-access.ts';
import { startAdminServer } from '../../src/dataplane/admin-server.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { createDaemonRegistry, startMetricsServer } from '../../src/dataplane/daemon-metrics.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { adminRequest } from '../helpers/admin-client.ts';
import { testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

/** A hub and a spoke over the in-memory transport, one VM each, which have exchanged a broadcast and a reply. */
async function pair(t: { after(fn: () => Promise<void>): void }): Promise<{ hub: Daemon; spoke: Daemon; vmSpoke: MemoryPort }> {
  const network = new MemoryNetwork();
  const hub = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  const spoke = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'h1', network }) }, { hostId: 'h1', role: 'spoke', hub: { ...hub.listenAddress!, id: 'hub' } });
  t.after(async () => { await spoke.close(); await hub.close(); });
  const vmHub = new MemoryPort({ name: 'vm0', mac: parseMac('02:00:00:00:00:10') });
  const vmSpoke = new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:00:11') });
  const got: Buffer[] = [];
  vmHub.onDeliver((f) => got.push(Buffer.from(f)));
  vmSpoke.onDeliver((f) => got.push(Buffer.from(f)));
  hub.addPort(vmHub);
  spoke.addPort(vmSpoke);
  await waitFor(() => spoke.facts().links.some((l) => l.state === 'up') && hub.facts().links.some((l) => l.state === 'up'), 'the spoke linked to the hub');
  vmSpoke.transmit(testFrame(BROADCAST_MAC, vmSpoke.mac, 1, 100));
  await waitFor(() => got.length === 1, 'the broadcast at vm0');
  vmHub.transmit(testFrame(vmSpoke.mac, vmHub.mac, 2, 100));
  await waitFor(() => got.length === 2, 'the reply at vm1');
  return { hub, spoke, vmSpoke };
}

/** The value of one series in Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

test('a daemon\'s metrics: links, ports, learned MACs, the flow cache and the process, read from the daemon at scrape time', async (t) => {
  const { spoke, vmSpoke } = await pair(t);
  // A frame with a forged source MAC: the locked port refuses it.
  vmSpoke.transmit(testFrame(BROADCAST_MAC, parseMac('02:00:00:00:66:66'), 3, 100));
  await waitFor(() => spoke.facts().ports[0]?.security?.['spoofed-source'] === 1, 'the forged frame refused');
  const text = await createDaemonRegistry({ daemon: spoke, controllerConnected: () => false }).metrics();
  const link = { host: 'h1', peer: 'hub', kind: 'backbone' };
  const facts = spoke.facts().links[0]!;
  assert.equal(sample(text, 'vnet_daemon_link_up', link), 1);
  assert.equal(sample(text, 'vnet_daemon_link_frames_total', { ...link, direction: 'tx' }), 1);
  assert.equal(sample(text, 'vnet_daemon_link_frames_total', { ...link, direction: 'rx' }), 1);
  assert.equal(sample(text, 'vnet_daemon_link_bytes_total', { ...link, direction: 'tx' }), facts.txBytes);
  assert.ok(facts.txBytes >= 100);
  assert.equal(sample(text, 'vnet_daemon_link_reconnects_total', link), 0);
  assert.equal(sample(text, 'vnet_daemon_link_queue_bytes', link), 0);
  // The port read two frames from its VM (the refused one included); one reached the link.
  assert.equal(sample(text, 'vnet_daemon_port_frames_total', { host: 'h1', port: 'vm1', direction: 'rx' }), 2);
  assert.equal(sample(text, 'vnet_daemon_port_frames_total', { host: 'h1', port: 'vm1', direction: 'tx' }), 1);
  assert.equal(sample(text, 'vnet_daemon_port_bytes_total', { host: 'h1', port: 'vm1', direction: 'rx' }), 200);
  assert.equal(sample(text, 'vnet_daemon_learned_macs', { host: 'h1', location: 'port', name: 'vm1' }), 1);
  assert.equal(sample(text, 'vnet_daemon_learned_macs', { host: 'h1', location: 'link', name: 'hub' }), 1);
  const s = spoke.table.stats;
  assert.equal(sample(text, 'vnet_daemon_forwarding_cache_hits_total', { host: 'h1' }), s.hits);
  assert.equal(sample(text, 'vnet_daemon_forwarding_cache_misses_total', { host: 'h1' }), s.misses);
  assert.equal(sample(text, 'vnet_daemon_port_security_dropped_frames_total', { host: 'h1', port: 'vm1', limit: 'spoofed-source' }), 1);
  assert.equal(sample(text, 'vnet_daemon_mac_conflicts_total', { host: 'h1' }), s.macConflicts);
  assert.equal(sample(text, 'vnet_daemon_controller_connected', { host: 'h1' }), 0);
  assert.ok((sample(text, 'vnet_daemon_process_cpu_seconds_total', { host: 'h1' }) ?? -1) >= 0);
  assert.ok((sample(text, 'vnet_daemon_process_resident_memory_bytes', { host: 'h1' }) ?? 0) > 0);
});

test('metric names follow Prometheus conventions: one prefix, counters end in _total, base units', async (t) => {
  const { spoke } = await pair(t);
  const text = await createDaemonRegistry({ daemon: spoke }).metrics();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => ({ name: m[1]!, type: m[2]! }));
  assert.ok(types.length > 20);
  for (const { name, type } of types) {
    assert.match(name, /^vnet_daemon_/, name);
    if (type === 'counter') assert.match(name, /_total$/, name);
    // prom-client's own process metrics name a few gauges *_total (nodejs_active_handles_total…); ours do not.
    else if (!/^vnet_daemon_(nodejs|process)_/.test(name)) assert.doesNotMatch(name, /_total$/, `${name} (${type})`);
    assert.doesNotMatch(name, /_(ms|milliseconds|kb|kib|mb|mib|percent)(_|$)/, `${name}: base units`);
  }
});

test('metrics are served at the admin interface (owner or token only) and on a read-only endpoint for scrapers', async (t) => {
  const { spoke } = await pair(t);
  const registry = createDaemonRegistry({ daemon: spoke });
  const token = generateAdminToken();
  const admin = await startAdminServer({ logger, daemon: spoke, metrics: registry }, { host: '127.0.0.1', port: 0, token });
  t.after(() => admin.close());
  const scrape = await fetch(`${admin.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(scrape.status, 200);
  assert.match(scrape.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  assert.match(await scrape.text(), /^vnet_daemon_link_up\{peer="hub",kind="backbone",host="h1"\} 1$/m);
  assert.equal((await adminRequest({ url: admin.url }, 'GET', '/metrics')).status, 401);
  const scraper = await startMetricsServer({ logger, registry }, { host: '127.0.0.1', port: 0 });
  t.after(() => scraper.close());
  const r = await fetch(scraper.url);
  assert.equal(r.status, 200);
  assert.match(await r.text(), /^vnet_daemon_port_frames_total\{port="vm1",direction="rx",host="h1"\} 1$/m);
  assert.equal((await fetch(scraper.url.replace('/metrics', '/rules'))).status, 404, 'nothing but /metrics there');
  assert.equal((await fetch(scraper.url, { method: 'POST' })).status, 404);
});
