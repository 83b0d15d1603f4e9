/**
 * `vnet daemon` with `images: {dir, host, port}`: the site's chunk store on
 * disk, served over mutual TLS to the other sites' daemons (docs/images.md);
 * the config refuses it without tls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { RemoteChunkSource } from '../../src/images/remote-chunk-source.ts';
import { initCa, issueHostCert, loadHostCredentials } from '../../src/pki/certs.ts';

const base = { host: 'h1', site: 'east', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ports: [] };

test('images config needs tls; strict keys', () => {
  assert.throws(() => parseDaemonConfig({ ...base, images: { dir: '/x', host: '127.0.0.1', port: 0 } }), { code: 'VNET_ERR_CONFIG', message: /images.*needs tls/ });
  assert.throws(() => parseDaemonConfig({ ...base, tls: { dir: '/x' }, images: { dir: '/x', host: '127.0.0.1', port: 0, extra: 1 } }), { code: 'VNET_ERR_CONFIG' });
});

test('a daemon with images serves its site\'s chunks to another host of the deployment over mutual TLS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-daemon-images-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCa(dir);
  await issueHostCert(dir, 'h1');
  await issueHostCert(dir, 'h2');
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig({
    ...base, tls: { dir }, images: { dir: join(dir, 'chunks'), host: '127.0.0.1', port: 0 },
  }));
  t.after(() => running.close());
  assert.ok(running.images !== undefined);
  assert.equal(running.images.store.site, 'east');
  const bytes = new Uint8Array(4096).map((_, i) => i % 251);
  const digest = await running.images.store.put(bytes);
  const remote = new RemoteChunkSource({ site: 'east', peer: 'h1', address: running.images.server.address, ...(await loadHostCredentials(dir, 'h2')) });
  t.after(() => remote.close());
  assert.equal(await remote.has(digest), true);
  assert.deepEqual(await remote.read(digest), bytes);
});
