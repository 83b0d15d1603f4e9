/**
 * `vnet ctl` for access, against a real controller on loopback: join tokens
 * created (host-bound by default), listed without secrets and revoked; a
 * daemon's credential listed and revoked; API tokens created with a scope,
 * listed and revoked; the web page's address printed on request.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { CONTROLLER_HOST_ID } from '../../src/controller/launch.ts';
import { caFiles } from '../../src/pki/certs.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { FakeDaemon } from '../controller/fixtures/fake-daemon.ts';
import { waitFor } from '../helpers/wait.ts';
import { ctlAgainstController, runCtl } from './ctl-runner.ts';

const DEPLOYMENT = `
name: ctl-access
controller: { control: { host: 127.0.0.1, port: 0 }, api: { host: 127.0.0.1, port: 0 } }
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true }
  - { id: hA, site: lab }
`;

describe('vnet ctl join-token, credentials, tokens, web-url', { timeout: 60_000 }, () => {
  const c = ctlAgainstController('ctl-access', DEPLOYMENT);
  const { dir, ctl } = c;

  it('creates host-bound join tokens, lists them without the secret, revokes them; refuses an unbound one unless asked', async () => {
    const unbound = await ctl('join-token', 'create');
    assert.equal(unbound.code, 2);
    assert.match(unbound.err.join('\n'), /--host ID.*--any-host/);
    const created = await ctl('join-token', 'create', '--host', 'hA', '--json');
    assert.equal(created.code, 0, created.err.join('\n'));
    const t = JSON.parse(created.out.join('\n')) as { token: string; id: string; expiresAt: number; singleUse: boolean };
    assert.equal(t.singleUse, true);
    assert.ok(t.expiresAt > Date.now() && t.expiresAt <= Date.now() + 3_600_000);
    const list = await ctl('join-token', 'list');
    assert.match(list.out.join('\n'), new RegExp(`${t.id}\\s+hA\\s+.*once\\s+valid`));
    assert.equal(list.out.join('\n').includes(t.token), false);
    const revoked = await ctl('join-token', 'revoke', t.id);
    assert.match(revoked.out.join('\n'), new RegExp(`revoked join token ${t.id} \\(for hA\\)`));
    assert.match((await ctl('join-token', 'list')).out.join('\n'), new RegExp(`${t.id}\\s+hA\\s+.*revoked`));
    const twice = await ctl('join-token', 'revoke', t.id);
    assert.equal(twice.code, 1);
    assert.match(twice.err.join('\n'), /409 VNET_ERR_CONFLICT/);
  });

  it('lists a joined host\'s credential and revokes it, closing its session', async () => {
    const created = JSON.parse((await ctl('join-token', 'create', '--host', 'hA', '--json')).out.join('\n')) as { token: string; id: string };
    const ca = await readFile(caFiles(join(dir, 'certs')).cert);
    const agent = new ControllerAgent({ daemon: new FakeDaemon('hA'), logger: silentLogger(), clock: realClock }, {
      url: c.proc.controlUrl, tls: { ca, servername: CONTROLLER_HOST_ID }, joinToken: created.token, backoff: { initialMs: 20, maxMs: 100 },
    });
    agent.start();
    try {
      await waitFor(() => agent.state === 'connected', 'hA joined');
      assert.match((await ctl('join-token', 'list')).out.join('\n'), new RegExp(`${created.id}\\s+hA\\s+.*used\\s+hA`));
      assert.match((await ctl('credentials', 'list')).out.join('\n'), /hA\s+credential\s+[0-9a-f]{12}\s+.*connected/);
      const revoked = await ctl('credentials', 'revoke', 'hA');
      assert.equal(revoked.code, 0, revoked.err.join('\n'));
      assert.match(revoked.out.join('\n'), /revoked the credential of hA; its control session was closed/);
      await waitFor(() => agent.stats.lastError?.code === 'VNET_ERR_CONTROL_AUTH', 'the credential refused afterwards');
      assert.match((await ctl('credentials', 'list')).out.join('\n'), /no host credentials/);
      assert.equal((await ctl('credentials', 'revoke', 'hA')).code, 1);
    } finally {
      await agent.close();
    }
  });

  it('creates a read token (the default scope), lists and revokes it; web-url prints the page address on request', async () => {
    const created = await ctl('tokens', 'create', 'grafana', '--json');
    const t = JSON.parse(created.out.join('\n')) as { token: string; id: string; scope: string };
    assert.equal(t.scope, 'read');
    const readerBase = ['--controller', c.proc.api.url, '--token', t.token];
    const asReader = await runCtl(['link', 'add', 'hub', 'hA', ...readerBase]);
    assert.equal(asReader.code, 1);
    assert.match(asReader.err.join('\n'), /403 VNET_ERR_API_FORBIDDEN/);
    const list = (await ctl('tokens', 'list')).out.join('\n');
    assert.match(list, new RegExp(`${t.id}\\s+grafana\\s+read\\s+.*valid`));
    assert.match(list, /admin\s+operator/);
    assert.equal(list.includes(t.token), false);
    const url = await ctl('web-url');
    const admin = (await readFile(join(dir, 'api-token'), 'utf8')).trim();
    assert.deepEqual(url.out, [`${c.proc.api.url}/#token=${encodeURIComponent(admin)}`]);
    const readOnly = (await ctl('web-url', '--read-only')).out.join('\n');
    assert.match(readOnly, new RegExp(`^${c.proc.api.url}/#token=vnet_`));
    assert.equal(readOnly.includes(encodeURIComponent(admin)), false);
    assert.match((await ctl('tokens', 'revoke', t.id)).out.join('\n'), new RegExp(`revoked API token ${t.id} "grafana"`));
    const refused = await runCtl(['hosts', ...readerBase]);
    assert.equal(refused.code, 4);
  });
});
