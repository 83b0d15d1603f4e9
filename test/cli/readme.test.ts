/**
 * The README's "deployment by hand" as a new user reads it: the daemon YAML
 * it shows is a valid daemon configuration, it names a host of the
 * deployment file the controller command uses, with that host's addresses,
 * and the certificates it makes are for exactly that file's hosts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { loadDeploymentFile } from '../../src/controller/deployment-file.ts';

const ROOT = join(import.meta.dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const byHand = readme.slice(readme.indexOf('### A deployment by hand'));

test('the README\'s deployment by hand: certificates, controller and daemon agree with the deployment file', () => {
  const sh = /```sh\n([\s\S]*?)```/.exec(byHand)?.[1] ?? '';
  const topology = /vnet controller --topology (\S+)/.exec(sh)?.[1];
  assert.ok(topology !== undefined, 'the controller command names a deployment file');
  const deployment = loadDeploymentFile(join(ROOT, topology));
  const certHosts = /for h in ([^;]+); do vnet certs host/.exec(sh)?.[1]?.trim().split(/\s+/) ?? [];
  assert.deepEqual([...certHosts].sort(), deployment.hosts.map((h) => h.id).sort(), 'a certificate for every host of the file');

  const yamlText = /```yaml\n([\s\S]*?)```/.exec(byHand)?.[1] ?? '';
  const config = parseDaemonConfig(parse(yamlText), 'README.md');
  const host = deployment.hosts.find((h) => h.id === config.host);
  assert.ok(host !== undefined, `the daemon's host ${config.host} is in ${topology}`);
  const hub = deployment.hosts.find((h) => h.hub === true)!;
  assert.equal(config.hubId, hub.id);
  assert.equal(config.hub?.port, hub.listen?.port, 'the hub address is the hub\'s listen address');
  assert.equal(config.listen?.port, host.listen?.port, 'the daemon listens where the file says');
  for (const p of config.ports) assert.ok(deployment.vms.some((v) => v.mac === p.mac && v.host === config.host), `port ${p.name} is a VM of ${config.host}`);
  assert.match(config.controller?.url ?? '', new RegExp(`:${deployment.controller.control?.port ?? -1}/control$`));
});
