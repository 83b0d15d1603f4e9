/**
 * The whole stack in one process: a real controller (its migration
 * coordinator, SQLite in a temporary directory, TLS control channel on port
 * 0) and three real daemons (TCP tunnels on port 0), each with the real
 * controller agent driving a real migration agent over a mutual-TLS
 * migration channel. VM v1 (a model guest) moves from h1 to h2 while v2, on
 * the hub, talks to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { startController } from '../../src/controller/runtime.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MigrationAgent } from '../../src/host/migration-agent.ts';
import { createModelGuest, ModelGuestVm } from '../../src/host/vm-runtime.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';
import { startMigratingHost, TWO_HOSTS_AND_HUB } from './fixtures/two-hosts-and-hub.ts';

const logger = silentLogger();
const clock = realClock;
const V1 = parseMac('02:00:00:00:00:01');
const V2 = parseMac('02:00:00:00:00:02');

const DEPLOYMENT = TWO_HOSTS_AND_HUB('live');

interface Host {
  daemon: Daemon;
  migrations: MigrationAgent;
  agent: ControllerAgent;
}

test('vnet moves a VM between two daemons under the controller: verified copy, running at the destination only, every frame delivered once', { timeout: 60_000 }, async (t) => {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), 'vnet-live-'));
  const controller = await startController({ logger, registry: new Registry(), clock }, {
    deployment: parseDeployment(DEPLOYMENT, 'live.yaml'),
    dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } },
    pingIntervalMs: 60_000,
  });
  const hosts: Host[] = [];
  t.after(async () => {
    for (const h of hosts) await h.agent.close();
    for (const h of hosts) await h.migrations.close();
    await controller.close();
    for (const h of hosts) await h.daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `wss://127.0.0.1:${controller.controlPort}/control`;
  const host = async (id: string, hub?: Daemon): Promise<Host> => {
    const { daemon, migrations, creds } = await startMigratingHost(pki, id, hub);
    const agent = new ControllerAgent({ daemon, logger, clock, migrations }, { url, tls: { ca: pki.ca, cert: creds.cert, key: creds.key }, backoff: { initialMs: 20, maxMs: 100 } });
    const h = { daemon, migrations, agent };
    hosts.push(h);
    return h;
  };
  const hub = await host('hub');
  const h1 = await host('h1', hub.daemon);
  const h2 = await host('h2', hub.daemon);

  const atH1 = new MemoryPort({ name: 'v1', mac: V1 });
  const gotH1: number[] = [];
  atH1.onDeliver((f) => gotH1.push(seqOf(Buffer.from(f))));
  h1.daemon.addPort(atH1, '10.0.0.1');
  const guest = createModelGuest('v1', { profile: 'idle', memoryMiB: 4, diskMiB: 1 }, clock.now());
  h1.migrations.addVm(new ModelGuestVm({ clock }, { name: 'v1', mac: V1, port: 'v1', guest }));
  const peer = new MemoryPort({ name: 'v2', mac: V2 });
  peer.onDeliver(() => undefined);
  hub.daemon.addPort(peer, '10.0.0.2');
  for (const h of hosts) h.agent.start();
  await waitFor(() => hosts.every((h) => h.agent.state === 'connected'), 'every daemon connected');
  await waitFor(() => controller.model.getVm('02:00:00:00:00:01')?.host === 'h1', 'the controller sees v1 on h1');
  atH1.transmit(testFrame(V2, V1, 0));
  peer.transmit(testFrame(V1, V2, 1));
  await waitFor(() => gotH1.length === 1, 'v2 heard by v1 on h1');

  // Whatever reaches v1 on h2, from the moment its held port exists.
  const gotH2: number[] = [];
  h2.migrations.onReport((r) => {
    if (r.state !== 'prepared') return;
    (h2.daemon.port('v1') as MemoryPort).onDeliver((f) => { const b = Buffer.from(f); if (b.readUInt16BE(12) === 0x88b5) gotH2.push(seqOf(b)); });
  });
  // Frames from v2 keep coming while the VM moves.
  let seq = 2;
  const ticker = setInterval(() => { peer.transmit(testFrame(V1, V2, seq++)); }, 5);
  t.after(() => clearInterval(ticker));
  const started = await controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
  const done = await waitFor(() => {
    const m = controller.model.getMigration(started.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 30_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(controller.model.getVm('02:00:00:00:00:01')?.host, 'h2');
  const moved = h2.migrations.vm('v1');
  assert.ok(moved !== undefined && moved.guest?.runState === 'running', 'v1 runs on h2');
  assert.equal(guest.runState, 'paused', 'and never again on h1');
  await waitFor(() => h1.daemon.port('v1') === undefined, 'h1 dropped the port');
  assert.equal(done.cutover?.lost, 0);
  assert.equal(done.cutover?.announced, 2);

  // v2's frames reach v1 on h2; across the move every frame arrived once, on one side or the other, each side in order.
  const mark = seq;
  await waitFor(() => gotH2.some((s) => s > mark), 'fresh frames from v2 at v1 on h2');
  clearInterval(ticker);
  const sent = seq - 1;
  await waitFor(() => gotH2.at(-1) === sent, 'the last frame at h2');
  const all = [...gotH1, ...gotH2];
  assert.equal(new Set(all).size, all.length, 'no frame twice');
  assert.deepEqual([...all].sort((a, b) => a - b), Array.from({ length: sent }, (_, i) => i + 1), 'no frame lost');
  assert.ok(gotH1.every((s, i) => i === 0 || s > gotH1[i - 1]!), 'in order on h1');
  // On h2 too: the source's flush (older frames) reaches the resumed VM before what came straight from the hub.
  assert.ok(gotH2.every((s, i) => i === 0 || s > gotH2[i - 1]!), `in order on h2: ${JSON.stringify(gotH2.slice(0, 16))}`);
  assert.ok(gotH2[0]! < mark, 'h2 got frames from before the cutover (held, then flushed)');
});
