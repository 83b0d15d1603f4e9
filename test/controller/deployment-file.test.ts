import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hubOf, loadDeploymentFile, parseDeployment, pathBetween } from '../../src/controller/deployment-file.ts';
import { ConfigError } from '../../src/common/errors.ts';

const TOPOLOGIES = join(import.meta.dirname, '..', '..', 'topologies');

const GOOD = `name: t
sites:
  - id: a
  - id: b
wan:
  - { sites: [a, b], bandwidthMbit: 100, rttMs: 20 }
hosts:
  - id: h1
    site: a
    hub: true
  - id: h2
    site: b
vms:
  - { name: v1, mac: "02:00:00:00:00:01", ip: 10.0.0.1, host: h1 }
  - { name: v2, mac: "02:00:00:00:00:02", ip: 10.0.0.2, host: h2 }
`;

/** Parse `text`, expect a ConfigError, and check it names the file, the line and the key. */
function expectError(text: string, line: number, key: string, messagePart: string): void {
  let caught: unknown;
  try {
    parseDeployment(text, 'broken.yaml');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, 'VNET_ERR_CONFIG');
  assert.equal(caught.file, 'broken.yaml');
  assert.equal(caught.key, key);
  assert.match(caught.message, new RegExp(`^broken\\.yaml: ${key.replace(/[[\].]/g, '\\$&')}: line ${line}: `));
  assert.ok(caught.message.includes(messagePart), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(messagePart)}`);
}

test('every shipped topology validates', () => {
  const files = readdirSync(TOPOLOGIES).filter((f) => f.endsWith('.yaml'));
  for (const required of ['single-site-4.yaml', 'wan-3-site.yaml', 'bsp-8.yaml']) assert.ok(files.includes(required), `${required} is shipped`);
  for (const f of files) {
    const d = loadDeploymentFile(join(TOPOLOGIES, f));
    assert.equal(d.hosts.filter((h) => h.hub).length, 1, f);
    assert.ok(Object.isFrozen(d), `${f} is frozen`);
  }
});

test('the shipped topologies carry what they promise', () => {
  const single = loadDeploymentFile(join(TOPOLOGIES, 'single-site-4.yaml'));
  assert.equal(single.hosts.length, 4);
  assert.equal(new Set(single.hosts.map((h) => h.site)).size, 1);
  const wan = loadDeploymentFile(join(TOPOLOGIES, 'wan-3-site.yaml'));
  assert.deepEqual(wan.sites.map((s) => s.id).sort(), ['california', 'illinois', 'texas']);
  const tx = wan.hosts.find((h) => h.site === 'texas')!;
  const il = wan.hosts.find((h) => h.site === 'illinois')!;
  assert.deepEqual(pathBetween(wan, tx.id, il.id), { bandwidthMbit: 465, rttMs: 27, loss: 0 });
  const bsp = loadDeploymentFile(join(TOPOLOGIES, 'bsp-8.yaml'));
  assert.equal(bsp.vms.length, 8);
});

test('a valid file parses, with defaults filled in and MACs normalised', () => {
  const d = parseDeployment(GOOD.replace('"02:00:00:00:00:01"', '"02-00-00-00-00-0A"'), 'good.yaml');
  assert.equal(hubOf(d).id, 'h1');
  assert.equal(d.vms[0]!.mac, '02:00:00:00:00:0a');
  assert.equal(d.policy.updatePeriodMs, 1000);
  assert.equal(d.policy.autoMigrate, false);
  assert.deepEqual(pathBetween(d, 'h1', 'h2'), { bandwidthMbit: 100, rttMs: 20, loss: 0 });
  assert.equal(pathBetween(d, 'h1', 'h1')?.bandwidthMbit, 1000);
});

test('an unknown key is rejected with its file, line and key', () => {
  expectError(GOOD.replace('    site: b\n', '    site: b\n    colour: red\n'), 13, 'hosts[1].colour', 'unknown key "colour"');
  expectError(`${GOOD}policy:\n  updatePeriodMs: 500\n  smoothing: 3\n`, 18, 'policy.smoothing', 'unknown key "smoothing"');
});

test('a duplicate MAC names the second one', () => {
  expectError(GOOD.replace('"02:00:00:00:00:02"', '"02:00:00:00:00:01"'), 15, 'vms[1].mac', 'duplicate MAC 02:00:00:00:00:01');
});

test('a duplicate IP names the second one', () => {
  expectError(GOOD.replace('ip: 10.0.0.2', 'ip: 10.0.0.1'), 15, 'vms[1].ip', 'duplicate IP 10.0.0.1');
});

test('a VM on an unknown host is rejected', () => {
  expectError(GOOD.replace('host: h2 }', 'host: h9 }'), 15, 'vms[1].host', 'unknown host h9');
});

test('two hubs are rejected at the second', () => {
  expectError(GOOD.replace('    site: b\n', '    site: b\n    hub: true\n'), 13, 'hosts[1].hub', 'two hubs: h1 and h2');
});

test('no hub is rejected', () => {
  expectError(GOOD.replace('    hub: true\n', ''), 8, 'hosts', 'no hub');
});

test('a host on an unknown site, a bad MAC, a bad IP and a multicast MAC are rejected', () => {
  expectError(GOOD.replace('    site: b\n', '    site: z\n'), 12, 'hosts[1].site', 'unknown site z');
  expectError(GOOD.replace('"02:00:00:00:00:02"', '"02:00:00:00:02"'), 15, 'vms[1].mac', 'not a MAC address');
  expectError(GOOD.replace('ip: 10.0.0.2', 'ip: 10.0.0.256'), 15, 'vms[1].ip', 'not an IPv4 or IPv6 address');
  expectError(GOOD.replace('"02:00:00:00:00:02"', '"01:00:5e:00:00:02"'), 15, 'vms[1].mac', 'unicast');
});

test('IPv6: VM addresses in canonical form, listen hosts as bare literals; brackets, zone ids and one address spelled twice are rejected', () => {
  const v6 = GOOD.replace('ip: 10.0.0.1', 'ip: "FD00:0:0::1"').replace('ip: 10.0.0.2', 'ip: "fd00::2"')
    .replace('    hub: true\n', '    hub: true\n    listen: { transport: tls, host: "fd00:9::1", port: 7000 }\n');
  const d = parseDeployment(v6, 'v6.yaml');
  assert.deepEqual(d.vms.map((v) => v.ip), ['fd00::1', 'fd00::2']);
  assert.equal(d.hosts[0]!.listen?.host, 'fd00:9::1');
  expectError(v6.replace('"fd00::2"', '"fd00:0::1"'), 16, 'vms[1].ip', 'duplicate IP fd00::1');
  expectError(v6.replace('"fd00::2"', '"fe80::2%eth0"'), 16, 'vms[1].ip', 'no zone id');
  expectError(v6.replace('host: "fd00:9::1"', 'host: "[fd00:9::1]"'), 11, 'hosts[0].listen.host', 'without brackets');
  expectError(v6.replace('host: "fd00:9::1"', 'host: "fd00:9::1%eth0"'), 11, 'hosts[0].listen.host', 'zone id');
  expectError(v6.replace('host: "fd00:9::1"', 'host: "fd00:9::1::2"'), 11, 'hosts[0].listen.host', 'not an IPv6 address');
});

test('sites with hosts need a WAN path between them', () => {
  expectError(GOOD.replace('wan:\n  - { sites: [a, b], bandwidthMbit: 100, rttMs: 20 }\n', ''), 1, 'wan', 'no WAN path between sites a and b');
});

test('wrong types and YAML syntax errors name the file and line', () => {
  expectError(GOOD.replace('rttMs: 20', 'rttMs: fast'), 6, 'wan[0].rttMs', 'expected number');
  assert.throws(() => parseDeployment('name: t\nsites: [unclosed\n', 'syntax.yaml'), (err: unknown) => err instanceof ConfigError && err.file === 'syntax.yaml' && /line 3: YAML syntax error/.test(err.message));
  assert.throws(() => parseDeployment(`${GOOD}name: again\n`, 'dup.yaml'), (err: unknown) => err instanceof ConfigError && err.file === 'dup.yaml' && /line 16: .*unique/i.test(err.message));
});

test('a missing file is a ConfigError naming it', () => {
  assert.throws(() => loadDeploymentFile('/nonexistent/x.yaml'), (err: unknown) => err instanceof ConfigError && err.file === '/nonexistent/x.yaml');
});

test('auto-migrate limits: defaults 1 at once and 10 minutes per VM; out-of-range values are rejected', () => {
  const base = 'name: t\nsites: [{ id: s }]\nhosts: [{ id: h, site: s, hub: true }]\n';
  const d = parseDeployment(base, 't.yaml');
  assert.deepEqual([d.policy.autoMigrateMaxConcurrent, d.policy.autoMigrateCooldownMs], [1, 600_000]);
  const set = parseDeployment(`${base}policy: { autoMigrate: true, autoMigrateMaxConcurrent: 3, autoMigrateCooldownMs: 0 }\n`, 't.yaml');
  assert.deepEqual([set.policy.autoMigrateMaxConcurrent, set.policy.autoMigrateCooldownMs], [3, 0]);
  assert.throws(() => parseDeployment(`${base}policy: { autoMigrateMaxConcurrent: 0 }\n`, 't.yaml'), /autoMigrateMaxConcurrent/);
  assert.throws(() => parseDeployment(`${base}policy: { autoMigrateCooldownMs: -1 }\n`, 't.yaml'), /autoMigrateCooldownMs/);
});

test('a standby hub: at most one, and not the hub itself', () => {
  const ok = parseDeployment(GOOD.replace('    site: b\n', '    site: b\n    standbyHub: true\n'), 'x.yaml');
  assert.deepEqual(ok.hosts.map((h) => [h.id, h.hub, h.standbyHub]), [['h1', true, false], ['h2', false, true]]);
  expectError(GOOD.replace('    hub: true\n', '    hub: true\n    standbyHub: true\n'), 11, 'hosts[0].standbyHub', 'both the hub and the standby hub');
});
