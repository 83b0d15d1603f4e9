/**
 * Setting up tunnel authentication: the link key file (made with mode 0600,
 * refused when others can read it or it is short or missing, each a
 * VNET_ERR_LINK_KEY naming the file), the daemon config's `tunnel` and
 * `members` checked once with the key named, and a daemon started from a
 * config with a link key authenticating its TCP links.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { linkKeyFile, loadLinkKey, writeLinkKey } from '../../src/dataplane/link-auth.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

describe('the link key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-linkkey-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  it('is written once with mode 0600 and kept unless forced', () => {
    const file = linkKeyFile(join(dir, 'a'));
    assert.equal(writeLinkKey(file), true);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const first = readFileSync(file, 'utf8');
    assert.equal(writeLinkKey(file), false);
    assert.equal(readFileSync(file, 'utf8'), first);
    assert.equal(writeLinkKey(file, true), true);
    assert.notEqual(readFileSync(file, 'utf8'), first);
    assert.equal(loadLinkKey(file).length, 32);
  });

  it('is refused when others can read it, when it is short, or missing — naming the file', () => {
    const file = join(dir, 'loose.key');
    writeFileSync(file, Buffer.alloc(32, 7).toString('base64'), { mode: 0o644 });
    chmodSync(file, 0o644);
    assert.throws(() => loadLinkKey(file), { code: 'VNET_ERR_LINK_KEY', file, message: /readable by others/ });
    const short = join(dir, 'short.key');
    writeFileSync(short, Buffer.alloc(16, 7).toString('hex'), { mode: 0o600 });
    assert.throws(() => loadLinkKey(short), { code: 'VNET_ERR_LINK_KEY', file: short, message: /at least 32 bytes/ });
    assert.throws(() => loadLinkKey(join(dir, 'nope.key')), { code: 'VNET_ERR_LINK_KEY', message: /cannot read the link key/ });
  });
});

describe('tunnel configuration', () => {
  const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 } };

  it('rejects settings that cannot apply, naming the key', () => {
    assert.throws(() => parseDaemonConfig({ ...base, transport: 'tls', tls: { dir: '/x' }, tunnel: { linkKeyFile: '/k' } }), { code: 'VNET_ERR_CONFIG', message: /tunnel.linkKeyFile.*TLS links use the certificates/ });
    assert.throws(() => parseDaemonConfig({ ...base, transport: 'tls', tls: { dir: '/x' }, tunnel: { allowUnauthenticated: true } }), { code: 'VNET_ERR_CONFIG', message: /always authenticated/ });
    assert.throws(() => parseDaemonConfig({ ...base, members: ['h2'] }), { code: 'VNET_ERR_CONFIG', message: /members.*must include this host/ });
    assert.throws(() => parseDaemonConfig({ ...base, tunnel: { maxPendingPerSource: 0 } }), { code: 'VNET_ERR_CONFIG', message: /tunnel.maxPendingPerSource/ });
    assert.throws(() => parseDaemonConfig({ ...base, tunnel: { linkKey: 'x' } }), { code: 'VNET_ERR_CONFIG' });
    const c = parseDaemonConfig({ ...base, tunnel: { linkKeyFile: '/k' } });
    assert.deepEqual(c.tunnel, { linkKeyFile: '/k', allowUnauthenticated: false, handshakeTimeoutMs: 5000, maxPendingHandshakes: 256, maxPendingPerSource: 16 });
  });

  it('a daemon whose link key cannot be read does not start (VNET_ERR_LINK_KEY)', async () => {
    await assert.rejects(startDaemonFromConfig({ logger }, parseDaemonConfig({ ...base, tunnel: { linkKeyFile: '/nonexistent/link.key' } })), { code: 'VNET_ERR_LINK_KEY', file: '/nonexistent/link.key' });
  });

  it('daemons started from configs with the link key link up over TCP, and a config member list refuses others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vnet-linkkey-'));
    const key = linkKeyFile(dir);
    writeLinkKey(key);
    const common = { tunnel: { linkKeyFile: key }, members: ['h1', 'h2'], keepaliveMs: 100, deadMs: 2000, reconnect: { initialMs: 20, maxMs: 100 } };
    const hub = await startDaemonFromConfig({ logger }, parseDaemonConfig({ ...base, ...common }));
    const hubPort = hub.daemon.listenAddress!.port;
    const spoke = await startDaemonFromConfig({ logger }, parseDaemonConfig({ host: 'h2', role: 'spoke', hub: { host: '127.0.0.1', port: hubPort }, hubId: 'h1', ...common }));
    const outsider = await startDaemonFromConfig({ logger }, parseDaemonConfig({ host: 'h9', role: 'spoke', hub: { host: '127.0.0.1', port: hubPort }, hubId: 'h1', ...common, members: ['h1', 'h9'] }));
    try {
      await waitFor(() => hub.daemon.link('h2') !== undefined && spoke.daemon.link('h1') !== undefined, 'h2 linked to the hub with the link key');
      await waitFor(() => (hub.daemon.listenerStats?.refusedByCode['VNET_ERR_NOT_MEMBER'] ?? 0) >= 1, 'h9, not a member, refused');
      assert.equal(hub.daemon.link('h9'), undefined);
      assert.deepEqual(hub.daemon.deploymentHosts, ['h1', 'h2']);
    } finally {
      await outsider.close();
      await spoke.close();
      await hub.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
