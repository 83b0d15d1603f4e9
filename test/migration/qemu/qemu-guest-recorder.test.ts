import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MIN_MEMORY_MIB, qemuArgs, recordGuestTrace } from '../../../src/migration/qemu/qemu-guest-recorder.ts';
import { QemuProcessError } from '../../../src/migration/errors.ts';

// The parts of the recorder that need no QEMU: the command line, option
// checks, and a QEMU that cannot start or dies at once. The real boot is in
// qemu-guest-recorder.priv.test.ts.

test('the QEMU command line: TCG, no network, no disk, serial console on stdio, QMP on the socket, workload on the kernel command line', () => {
  const a = qemuArgs({ image: { kernel: '/boot/vmlinuz-x', initramfs: '/i.cpio.gz' }, memoryMiB: 128, workload: 'compile', qmpSocket: '/tmp/d/qmp.sock' });
  const after = (flag: string): string | undefined => a[a.indexOf(flag) + 1];
  assert.equal(after('-accel'), 'tcg');
  assert.equal(after('-m'), '128M');
  assert.equal(after('-nic'), 'none');
  assert.equal(after('-serial'), 'stdio');
  assert.equal(after('-kernel'), '/boot/vmlinuz-x');
  assert.equal(after('-initrd'), '/i.cpio.gz');
  assert.equal(after('-append'), 'console=ttyS0 quiet panic=-1 vnet.workload=compile');
  assert.equal(after('-qmp'), 'unix:/tmp/d/qmp.sock,server=on,wait=off');
  assert.ok(a.includes('-nographic') && a.includes('-no-reboot') && a.includes('-nodefaults'));
  assert.ok(!a.some((x) => /kvm|-drive|-hda/.test(x)));
});

test('bad options are refused before anything starts', async () => {
  const base = { out: join(tmpdir(), 'never.trace'), image: { kernel: '/nonexistent', initramfs: '/nonexistent' } };
  await assert.rejects(recordGuestTrace({ ...base, workload: 'rm -rf' }), RangeError);
  await assert.rejects(recordGuestTrace({ ...base, workload: 'idle', memoryMiB: MIN_MEMORY_MIB - 1 }), RangeError);
  await assert.rejects(recordGuestTrace({ ...base, workload: 'idle', snapshots: 0 }), RangeError);
  await assert.rejects(recordGuestTrace({ ...base, workload: 'idle', intervalMs: -1 }), RangeError);
});

test('a QEMU binary that does not exist, or exits at once, is a QemuProcessError with its output, and leaves no files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-rec-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'x.trace');
  const image = { kernel: '/nonexistent/vmlinuz', initramfs: '/nonexistent/initramfs' };
  await assert.rejects(recordGuestTrace({ workload: 'idle', out, image, qemuBinary: join(dir, 'no-such-qemu'), bootTimeoutMs: 5000 }), (err: unknown) => {
    assert.ok(err instanceof QemuProcessError, String(err));
    assert.equal(err.code, 'VNET_ERR_QEMU_PROCESS');
    return true;
  });
  const fake = join(dir, 'fake-qemu');
  writeFileSync(fake, '#!/bin/sh\necho "qemu: could not load kernel" >&2\nexit 1\n', { mode: 0o755 });
  await assert.rejects(recordGuestTrace({ workload: 'idle', out, image, qemuBinary: fake, bootTimeoutMs: 5000 }), (err: unknown) => {
    assert.ok(err instanceof QemuProcessError, String(err));
    assert.match(err.outputTail, /could not load kernel/);
    return true;
  });
  assert.deepEqual(readdirSync(dir).sort(), ['fake-qemu']);
});
