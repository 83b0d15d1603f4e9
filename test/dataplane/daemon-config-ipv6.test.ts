import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { portAddress } from '../../src/host/configured-port.ts';
import { hostPortArg } from '../../src/cli/cli-options.ts';

const port = { name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01' };

function refused(input: Record<string, unknown>, key: string, part: string): void {
  assert.throws(() => parseDaemonConfig(input, 'd.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.key, key);
    assert.ok(err.message.includes(part), `${err.message} lacks ${part}`);
    return true;
  });
}

test('daemon config: IPv6 literals for listen, hub, migration, admin, metrics; VM port addresses IPv6 with a prefix', () => {
  const c = parseDaemonConfig({
    host: 'h1', role: 'spoke', listen: { host: 'fd00:9::2', port: 7000 }, hub: { host: 'fd00:9::1', port: 7000 },
    tls: { dir: '/nonexistent/certs' }, migration: { host: '::', port: 8000, advertise: 'fd00:9::2' }, admin: { host: '::1', port: 7500 }, metrics: { host: '::1', port: 9100 },
    ports: [{ ...port, ip: 'fd00:98::a/64' }, { ...port, name: 'vm2', mac: '02:00:00:00:00:02', ip: 'fd00:98::b' }],
  }, 'd.yaml');
  assert.equal(c.listen?.host, 'fd00:9::2');
  assert.deepEqual(c.ports.map((p) => p.ip), ['fd00:98::a/64', 'fd00:98::b']);
  assert.equal(portAddress('fd00:98::b'), 'fd00:98::b/64', 'an IPv6 port address without a prefix is a /64');
  assert.equal(portAddress('10.0.0.1'), '10.0.0.1/24');
});

test('daemon config: bracketed or zoned IPv6 hosts and bad port addresses are refused, naming the key', () => {
  const base = { host: 'h1', role: 'hub', listen: { host: '::1', port: 7000 } };
  refused({ ...base, listen: { host: '[fd00::1]', port: 7000 } }, 'listen.host', 'without brackets');
  refused({ ...base, listen: { host: 'fe80::1%eth0', port: 7000 } }, 'listen.host', 'zone id');
  refused({ ...base, listen: { host: 'fd00::1::2', port: 7000 } }, 'listen.host', 'not an IPv6 address');
  refused({ ...base, ports: [{ ...port, ip: 'fd00::1/129' }] }, 'ports[0].ip', 'not an IPv4 or IPv6 address');
  refused({ ...base, ports: [{ ...port, ip: 'fe80::1%eth0/64' }] }, 'ports[0].ip', 'not an IPv4 or IPv6 address');
});

test('admin interface on [::1] needs no token file (loopback); on another IPv6 address it does', () => {
  const base = { host: 'h1', role: 'hub', listen: { host: '::1', port: 7000 } };
  assert.doesNotThrow(() => parseDaemonConfig({ ...base, admin: { host: '::1', port: 7500 } }, 'd.yaml'));
  refused({ ...base, admin: { host: 'fd00::1', port: 7500 } }, 'admin.tokenFile', 'token');
});

test('CLI HOST:PORT flags: [v6]:port parsed, a bare IPv6 address or a zone id refused with the reason', () => {
  assert.deepEqual(hostPortArg('[fd00::1]:7000'), { host: 'fd00::1', port: 7000 });
  assert.throws(() => hostPortArg('fd00::1:7000'), /in brackets/);
  assert.throws(() => hostPortArg('[fe80::1%eth0]:7000'), /zone id/);
});
