import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';

const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 7000 } };
const packet = { name: 'vm6', type: 'packet', mac: '02:00:00:00:01:06', ip: '10.0.0.6/24' };

function refused(input: Record<string, unknown>, key: string, part: string): void {
  assert.throws(() => parseDaemonConfig(input, 'd.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.key, key);
    assert.ok(err.message.includes(part), `${err.message} lacks ${part}`);
    return true;
  });
}

test('daemon config: a packet port on an existing interface (ifname), or with a QEMU VM the daemon boots on its own TAP device', () => {
  const c = parseDaemonConfig({
    ...base, qemu: { dir: '/run/vnet/qemu' },
    ports: [{ ...packet, ifname: 'tap6' }, { ...packet, name: 'vm7', mac: '02:00:00:00:01:07', qemu: { memoryMiB: 128 } }],
  }, 'd.yaml');
  assert.deepEqual(c.ports.map((p) => [p.type, p.ifname, p.qemu?.memoryMiB]), [['packet', 'tap6', undefined], ['packet', undefined, 128]]);
});

test('daemon config: ifname only on packet ports, path only on stream ports, qemu only on stream and packet ports, a QEMU VM needs qemu: {dir}', () => {
  refused({ ...base, ports: [{ ...packet, type: 'tap', ifname: 'tap6' }] }, 'ports[0].ifname', 'packet ports only');
  refused({ ...base, ports: [{ ...packet, path: '/run/x.sock' }] }, 'ports[0].path', 'stream ports only');
  refused({ ...base, qemu: { dir: '/q' }, ports: [{ ...packet, type: 'tap', qemu: { memoryMiB: 128 } }] }, 'ports[0].qemu', 'stream and packet ports only');
  refused({ ...base, ports: [{ ...packet, qemu: { memoryMiB: 128 } }] }, 'qemu', 'needs qemu: {dir}');
  refused({ ...base, ports: [{ ...packet, ifname: 'bad name' }] }, 'ports[0].ifname', 'interface name');
});
