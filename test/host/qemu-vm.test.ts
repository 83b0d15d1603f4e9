/**
 * A QEMU VM's command line (src/host/qemu-vm.ts, pure) and what the
 * destination watches for on its stream port (QEMU's RARP for the VM,
 * src/host/qemu-migration-receive.ts), without QEMU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMac } from '../../src/common/mac.ts';
import { isRarpFrom } from '../../src/host/qemu-migration-receive.ts';
import { qemuVmArgs } from '../../src/host/qemu-vm.ts';
import { QemuVmError } from '../../src/host/errors.ts';

const spec = { name: 'vm1', mac: parseMac('02:00:00:00:0a:01'), socketPath: '/run/q/vm1.sock', memoryMiB: 128, ip: '10.0.0.5/24', image: { kernel: '/boot/k', initramfs: '/g/i.gz' } };

test('the command line: TCG, no defaults, the guest image with its address, an e1000 with the VM\'s MAC on the stream port, QMP', () => {
  const args = qemuVmArgs(spec, '/run/q/vm1/qmp.sock', false);
  const after = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
  assert.equal(after('-accel'), 'tcg');
  assert.ok(args.includes('-nodefaults'));
  assert.equal(after('-m'), '128M');
  assert.equal(after('-kernel'), '/boot/k');
  assert.equal(after('-initrd'), '/g/i.gz');
  assert.match(after('-append') ?? '', /vnet\.ip=10\.0\.0\.5\/24/);
  assert.equal(after('-netdev'), 'stream,id=n0,server=off,addr.type=unix,addr.path=/run/q/vm1.sock');
  assert.equal(after('-device'), 'e1000,netdev=n0,mac=02:00:00:00:0a:01');
  assert.equal(after('-qmp'), 'unix:/run/q/vm1/qmp.sock,server=on,wait=off');
  assert.ok(!args.includes('-incoming'));
});

test('the destination\'s copy waits for its stream and does not run after it (-incoming defer -S); a URI runs once loaded; a netdev can replace the stream', () => {
  const copy = qemuVmArgs(spec, '/q', true);
  assert.deepEqual(copy.slice(-3), ['-incoming', 'defer', '-S']);
  const plain = qemuVmArgs({ ...spec, ip: undefined }, '/q', 'unix:/m.sock', 'tap,id=n0,ifname=qx0,script=no,downscript=no');
  assert.deepEqual(plain.slice(-2), ['-incoming', 'unix:/m.sock']);
  assert.equal(plain[plain.indexOf('-netdev') + 1], 'tap,id=n0,ifname=qx0,script=no,downscript=no');
  assert.doesNotMatch(plain[plain.indexOf('-append') + 1]!, /vnet\.ip/);
});

test('QEMU\'s RARP for the VM is recognised; another MAC\'s, another EtherType, a runt are not', () => {
  const frame = (src: string, type: number, len = 60): { data: Buffer; offload: undefined } => {
    const d = Buffer.alloc(len);
    d.fill(0xff, 0, 6);
    Buffer.from(src.split(':').map((h) => parseInt(h, 16))).copy(d, 6);
    if (len >= 14) d.writeUInt16BE(type, 12);
    return { data: d, offload: undefined };
  };
  assert.equal(isRarpFrom(frame('02:00:00:00:0a:01', 0x8035), spec.mac), true);
  assert.equal(isRarpFrom(frame('02:00:00:00:0a:02', 0x8035), spec.mac), false);
  assert.equal(isRarpFrom(frame('02:00:00:00:0a:01', 0x0806), spec.mac), false);
  assert.equal(isRarpFrom(frame('02:00:00:00:0a:01', 0x8035, 12), spec.mac), false);
});

test('a VM on a TAP device (a packet port\'s): QEMU attaches to the daemon\'s device by name, no scripts, no vnet_hdr; a NIC with neither is refused', () => {
  const { socketPath: _unused, ...noSocket } = spec;
  const args = qemuVmArgs({ ...noSocket, tap: 'vm1tap' }, '/q', false);
  assert.equal(args[args.indexOf('-netdev') + 1], 'tap,id=n0,ifname=vm1tap,script=no,downscript=no,vnet_hdr=off');
  assert.equal(args[args.indexOf('-device') + 1], 'e1000,netdev=n0,mac=02:00:00:00:0a:01');
  assert.throws(() => qemuVmArgs(noSocket, '/q', false), QemuVmError);
});
