/**
 * First contact with a join token made through the operator API: a daemon
 * without a host certificate joins with it; the token is single-use and
 * bound to its host; bad requests name the field.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { realClock } from '../../src/common/clock.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { CONTROLLER_HOST_ID, startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { caFiles } from '../../src/pki/certs.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const DEPLOYMENT = `
name: join-test
controller: { control: { host: 127.0.0.1, port: 0 }, api: { host: 127.0.0.1, port: 0 } }
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true }
  - { id: hA, site: lab }
`;

describe('join tokens through the operator API', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-join-'));
  let ctl: ControllerProcess;
  let apiToken: string;
  const cleanup: (() => Promise<void>)[] = [];

  const api = (path: string, body: unknown) =>
    fetch(`${ctl.api.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  async function agentWith(host: string, joinToken: string): Promise<ControllerAgent> {
    const net = new MemoryNetwork();
    const daemon = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: host, network: net }) }, { hostId: host, role: host === 'hub' ? 'hub' : 'spoke', listen: { host: host, port: 1 }, hub: host === 'hub' ? undefined : { host: 'nowhere', port: 1, id: 'hub' } });
    const ca = await readFile(caFiles(join(dir, 'certs')).cert);
    const agent = new ControllerAgent({ daemon, logger, clock: realClock }, { url: ctl.controlUrl, tls: { ca, servername: CONTROLLER_HOST_ID }, joinToken, backoff: { initialMs: 50, maxMs: 200 } });
    agent.start();
    cleanup.push(async () => {
      await agent.close();
      await daemon.close();
    });
    return agent;
  }

  before(async () => {
    // The hub's certificate is issued (in the controller's TLS directory); hA has none.
    await ensureDemoCertificates(join(dir, 'certs'), ['hub']);
    ctl = await startControllerProcess({ logger }, { deployment: parseDeployment(DEPLOYMENT, 'join.yaml'), dbPath: join(dir, 'vnet.db'), tlsDir: join(dir, 'certs'), tokenFile: join(dir, 'api-token') });
    apiToken = ctl.newToken!;
  });

  after(async () => {
    for (const c of cleanup) await c();
    await ctl.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets a daemon without a certificate join once, and only as its host', async () => {
    const res = await api('/api/v1/join-tokens', { host: 'hA', ttlSeconds: 600 });
    assert.equal(res.status, 201);
    const t = (await res.json()) as { token: string; host: string; singleUse: boolean; expiresAt: number };
    assert.equal(t.host, 'hA');
    assert.equal(t.singleUse, true);
    assert.ok(t.expiresAt > Date.now());

    const wrongHost = await agentWith('hub', t.token);
    await waitFor(() => wrongHost.stats.lastError !== undefined, 'the token refused for another host');
    assert.notEqual(ctl.controller.model.getHost('hub')?.state, 'up');

    const good = await agentWith('hA', t.token);
    await waitFor(() => good.state === 'connected', 'hA joined with the token');
    await waitFor(() => ctl.controller.model.getHost('hA')?.state === 'up', 'hA up at the controller');

    const again = await agentWith('hA', t.token);
    await waitFor(() => again.stats.lastError !== undefined, 'a second use refused');
    assert.notEqual(again.state, 'connected');
  });

  it('refuses a token for a host whose certificate was issued, before that host ever connected', async () => {
    const res = await api('/api/v1/join-tokens', { host: 'hub' });
    assert.equal(res.status, 201);
    const t = (await res.json()) as { token: string; id: string };
    const taker = await agentWith('hub', t.token);
    await waitFor(() => taker.stats.lastError !== undefined, 'the token refused');
    assert.match(taker.stats.lastError!.message, /host hub already has an identity/);
    assert.notEqual(ctl.controller.model.getHost('hub')?.state, 'up');
    const hub = ctl.controller.access.listHostIdentities().find((i) => i.host === 'hub');
    assert.equal(hub?.kind, 'certificate');
    assert.equal(hub?.lastUsedAt, null);
  });

  it('names the bad field of a malformed request, and refuses unknown hosts', async () => {
    const bad = await api('/api/v1/join-tokens', { host: 'hA', ttlSeconds: -5 });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /ttlSeconds/);
    const unknown = await api('/api/v1/join-tokens', { host: 'nosuchhost' });
    assert.equal(unknown.status, 404);
  });
});
