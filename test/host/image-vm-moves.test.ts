/**
 * A VM on a disk from an image keeps its description across moves
 * (docs/images.md, "A VM's disk from an image"): real controller, real
 * `vnet daemon`s on loopback, three sites. v1 starts at california on the
 * image (no chunk there), reads some of it and writes into two chunks;
 * it moves to texas, then on to east — both hold the image. Each move
 * sends chunk records for every chunk the VM has not written and blocks
 * only for its own chunks (the migration carries the image description,
 * so texas can send the delta again); the disk arrives identical each time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig, type RunningDaemon } from '../../src/host/daemon-runner.ts';
import type { ModelGuestVm } from '../../src/host/vm-runtime.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { publishImage } from '../../src/images/replication.ts';
import { BLOCK_SIZE } from '../../src/migration/guest.ts';
import { capturingLogger, type LogRecord } from '../helpers/log-capture.ts';
import { startImageSites } from '../helpers/image-sites.ts';
import { waitFor } from '../helpers/wait.ts';

const CHUNK = 16384;
const CHUNKS = 24;
const SENT = 'migration sent and verified; waiting for the verdict';

const DEPLOYMENT = `name: image-moves
sites:
  - id: east
  - id: texas
  - id: california
hosts:
  - { id: ha, site: east, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hb, site: texas, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
  - { id: hc, site: california, listen: { transport: tls, host: 127.0.0.1, port: 0 }, images: { host: 127.0.0.1, port: 0 } }
vms:
  - { name: v1, mac: "02:00:00:00:00:01", ip: 10.0.0.1, host: hc }
wan:
  - { sites: [east, texas], bandwidthMbit: 465, rttMs: 27 }
  - { sites: [east, california], bandwidthMbit: 465, rttMs: 70 }
  - { sites: [texas, california], bandwidthMbit: 465, rttMs: 40 }
policy: { updatePeriodMs: 100 }
`;

function imageBytes(): Uint8Array {
  const out = new Uint8Array(CHUNKS * CHUNK);
  for (let i = 0; i < out.length; i++) out[i] = (Math.imul(i >>> 10, 2654435761) >>> 11) ^ (i & 0xff);
  return out;
}

test('a VM on an image disk moves twice in a row (california → texas → east), each move sending only its own chunks', { timeout: 120_000 }, async (t) => {
  const { dir, tls, controller, url, daemons } = await startImageSites(t, { name: 'image-moves', deployment: DEPLOYMENT, hosts: ['ha', 'hb', 'hc'], logger: silentLogger() });
  let hubPort: number | undefined;
  const logs = new Map<string, LogRecord[]>();
  const start = async (host: string, site: string, extra: Record<string, unknown> = {}, prefetch = true): Promise<RunningDaemon> => {
    const { logger, records } = capturingLogger();
    logs.set(host, records);
    const d = await startDaemonFromConfig({ logger }, parseDaemonConfig({
      host, site, role: host === 'ha' ? 'hub' : 'spoke', transport: 'tls', tls: { dir: tls },
      listen: { host: '127.0.0.1', port: 0 }, ports: [],
      ...(hubPort !== undefined ? { hub: { host: '127.0.0.1', port: hubPort }, hubId: 'ha' } : {}),
      controller: { url, servername: 'controller' },
      images: { dir: join(dir, `chunks-${host}`), host: '127.0.0.1', port: 0, prefetch },
      ...extra,
    }));
    daemons.push(d);
    return d;
  };

  const ha = await start('ha', 'east');
  hubPort = ha.daemon.facts().listen?.port;
  const bytes = imageBytes();
  const v1 = chunkImage({ imageId: 'debian', version: 1, chunkSize: CHUNK }, bytes, await createChunkHasher());
  await publishImage(ha.images!.store, controller.images, v1.manifest, v1.chunkBytes);
  const hb = await start('hb', 'texas');
  const hc = await start('hc', 'california', {
    ports: [{ name: 'v1', type: 'memory', mac: '02:00:00:00:00:01', ip: '10.0.0.1', guest: { memoryMiB: 1, image: { id: 'debian' } } }],
  }, false);
  await waitFor(() => hb.images?.propagator.status('debian', 1)?.state === 'complete', 'v1 complete at texas', 30_000);
  await waitFor(() => daemons.every((d) => d.agent?.state === 'connected'), 'every daemon connected');
  const onHc = await waitFor(() => hc.migrations.vm('v1') as ModelGuestVm | undefined, 'v1 on its image disk at california', 30_000);
  await waitFor(() => controller!.model.getVm('02:00:00:00:00:01')?.host === 'hc', 'the controller sees v1 at california');

  // At california: a few reads (on demand), a write inside chunk 5 and a whole block of chunk 7.
  await onHc.imageDisk!.read(0, 3 * CHUNK);
  await onHc.imageDisk!.write(5 * CHUNK + 100, new Uint8Array(300).fill(0xa5));
  await onHc.imageDisk!.write(7 * CHUNK + BLOCK_SIZE, new Uint8Array(BLOCK_SIZE).fill(0x5a));
  const expected = bytes.slice();
  expected.fill(0xa5, 5 * CHUNK + 100, 5 * CHUNK + 400);
  expected.fill(0x5a, 7 * CHUNK + BLOCK_SIZE, 7 * CHUNK + 2 * BLOCK_SIZE);

  const move = async (to: string, from: string): Promise<LogRecord> => {
    const before = logs.get(from)!.filter((r) => r.msg === SENT).length;
    const started = await controller!.model.startMigration!('v1', to, 'admin', { rule: 'smart-stop' });
    const done = await waitFor(() => {
      const m = controller!.model.getMigration(started.id);
      return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
    }, `the move to ${to} over`, 60_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    return logs.get(from)!.filter((r) => r.msg === SENT)[before]!;
  };
  const diskOf = async (vm: ModelGuestVm): Promise<Uint8Array> => vm.imageDisk!.read(0, bytes.length);

  // Move 1: california → texas. 22 chunks as records, chunks 5 and 7 as blocks.
  const first = await move('hb', 'hc');
  assert.equal(first.imageChunks, CHUNKS - 2, 'every chunk but the VM\'s two went as a chunk record');
  assert.ok((first.diskBytes as number) <= 2 * CHUNK + 4096, `only the two own chunks' blocks crossed (${String(first.diskBytes)} disk bytes)`);
  const onHb = await waitFor(() => hb.migrations.vm('v1') as ModelGuestVm | undefined, 'v1 runs at texas');
  assert.ok(onHb.imageDisk !== undefined, 'v1 kept its image description at texas');
  assert.equal(onHb.imageDisk.manifest.version, 1);
  assert.deepEqual(onHb.imageDisk.description.written, [...[20, 21, 22, 23], ...[28, 29, 30, 31]], 'its own blocks: chunks 5 and 7');
  assert.deepEqual(await diskOf(onHb), expected, 'the disk arrived identical at texas');

  // At texas it writes into chunk 10; then move 2: texas → east, again only its own (now three) chunks.
  await onHb.imageDisk.write(10 * CHUNK, new Uint8Array(10).fill(7));
  expected.fill(7, 10 * CHUNK, 10 * CHUNK + 10);
  const second = await move('ha', 'hb');
  assert.equal(second.imageChunks, CHUNKS - 3, 'the second move sent every unwritten chunk as a record again');
  assert.ok((second.diskBytes as number) <= 3 * CHUNK + 4096, `only the three own chunks' blocks crossed (${String(second.diskBytes)} disk bytes)`);
  const onHa = await waitFor(() => ha.migrations.vm('v1') as ModelGuestVm | undefined, 'v1 runs at east');
  assert.deepEqual(await diskOf(onHa), expected, 'the disk arrived identical at east');
  assert.equal(onHa.imageDisk!.description.written.length, 12);
});
