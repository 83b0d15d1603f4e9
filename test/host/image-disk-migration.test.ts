/**
 * A VM cloned from a base image moves its delta between two daemons under
 * the real controller (docs/images.md, "Migration: only what the
 * destination lacks"): v1's disk on h1 is a base image plus its own writes;
 * h2's migration agent has a chunk store holding the base image. The
 * source sends chunk records for the 14 unchanged chunks and blocks only for
 * the 2 changed ones; the destination fills the rest from its store; the
 * VM runs on h2 with a disk identical to the one it left.
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
import type { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import type { MigrationAgent } from '../../src/host/migration-agent.ts';
import { ModelGuestVm } from '../../src/host/vm-runtime.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { BLOCK_SIZE } from '../../src/migration/guest.ts';
import { ModelGuest } from '../../src/migration/guests/memory-guest.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { waitFor } from '../helpers/wait.ts';
import { startMigratingHost, TWO_HOSTS_AND_HUB } from './fixtures/two-hosts-and-hub.ts';

const BLOCKS = 64;
const CHUNK_BLOCKS = 4;

test('a VM on a base image the destination\'s store holds moves its delta under the controller; its disk arrives whole', { timeout: 60_000 }, async (t) => {
  const pki = testPki();
  const dir = mkdtempSync(join(tmpdir(), 'vnet-image-disk-'));
  const controller = await startController({ logger: silentLogger(), registry: new Registry(), clock: realClock }, {
    deployment: parseDeployment(TWO_HOSTS_AND_HUB('image-disk'), 'image-disk.yaml'),
    dbPath: join(dir, 'vnet.db'),
    control: { host: '127.0.0.1', port: 0, tls: { ...pki.controller, ca: pki.ca } },
    pingIntervalMs: 60_000,
  });
  const hosts: Array<{ daemon: Daemon; migrations: MigrationAgent; agent: ControllerAgent }> = [];
  t.after(async () => {
    for (const h of hosts) await h.agent.close();
    for (const h of hosts) await h.migrations.close();
    await controller.close();
    for (const h of hosts) await h.daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `wss://127.0.0.1:${controller.controlPort}/control`;
  const host = async (id: string, hub: Daemon | undefined, extra: Parameters<typeof startMigratingHost>[3] = {}) => {
    const { daemon, migrations, creds } = await startMigratingHost(pki, id, hub, extra);
    const agent = new ControllerAgent({ daemon, logger: silentLogger(), clock: realClock, migrations }, { url, tls: { ca: pki.ca, cert: creds.cert, key: creds.key }, backoff: { initialMs: 20, maxMs: 100 } });
    const h = { daemon, migrations, agent };
    hosts.push(h);
    return h;
  };

  // The base image, and h2's site store holding it.
  const hasher = await createChunkHasher();
  const base = new Uint8Array(BLOCKS * BLOCK_SIZE).map((_, i) => (Math.imul(i >>> 12, 40503) >>> 8) ^ i);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'base', version: 1, chunkSize: CHUNK_BLOCKS * BLOCK_SIZE }, base, hasher);
  const store = await ChunkStore.open({ site: 'lab', dir: join(dir, 'chunks-h2') });
  for (const b of chunkBytes) await store.put(b);

  const src = capturingLogger();
  const dst = capturingLogger();
  const hub = await host('hub', undefined);
  const h1 = await host('h1', hub.daemon, { logger: src.logger });
  await host('h2', hub.daemon, { logger: dst.logger, chunks: store });

  // v1 on h1: cloned from the base image, then its own writes to blocks 6 and 50.
  const guest = new ModelGuest({ name: 'v1', pageCount: 256, blockCount: BLOCKS, representation: 'bytes', seed: 5 });
  for (let b = 0; b < BLOCKS; b++) guest.disk!.writeBlock(b, base.slice(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE));
  for (const b of [6, 50]) guest.disk!.writeBlock(b, new Uint8Array(BLOCK_SIZE).fill(b));
  const V1 = parseMac('02:00:00:00:00:01');
  const port = new MemoryPort({ name: 'v1', mac: V1 });
  h1.daemon.addPort(port, '10.0.0.1');
  h1.migrations.addVm(new ModelGuestVm({ clock: realClock }, {
    name: 'v1', mac: V1, port: 'v1', guest,
    diskImage: {
      chunkBlocks: CHUNK_BLOCKS, chunks: manifest.chunks,
      matches(first, count, digest) {
        const span = new Uint8Array(count * BLOCK_SIZE);
        for (let i = 0; i < count; i++) span.set(guest.disk!.readBlock(first + i) as Uint8Array, i * BLOCK_SIZE);
        return hasher.digest(span) === digest;
      },
    },
  }));
  const expected = Array.from({ length: BLOCKS }, (_, b) => (guest.disk!.readBlock(b) as Uint8Array).slice());
  for (const h of hosts) h.agent.start();
  await waitFor(() => hosts.every((h) => h.agent.state === 'connected'), 'every daemon connected');
  await waitFor(() => controller.model.getVm('02:00:00:00:00:01')?.host === 'h1', 'the controller sees v1 on h1');

  const started = await controller.model.startMigration!('v1', 'h2', 'admin', { rule: 'smart-stop' });
  const done = await waitFor(() => {
    const m = controller.model.getMigration(started.id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 30_000);
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  const moved = hosts[2]!.migrations.vm('v1');
  assert.ok(moved?.guest !== undefined && moved.guest.runState === 'running', 'v1 runs on h2');
  for (let b = 0; b < BLOCKS; b++) assert.deepEqual(moved.guest.disk!.readBlock(b), expected[b], `block ${b}`);

  const sent = src.records.find((r) => r.msg === 'migration sent and verified; waiting for the verdict');
  assert.equal(sent?.imageChunks, 14, 'the 14 unchanged chunks went as chunk records');
  assert.ok((sent?.diskBytes as number) < 16 * BLOCK_SIZE, `only the changed chunks' blocks crossed (${String(sent?.diskBytes)} disk bytes)`);
  const received = dst.records.find((r) => r.msg === 'migration received and verified: ready (not running)');
  assert.equal(received?.chunkBlocks, 56, 'h2 filled 56 blocks from its store');
});
