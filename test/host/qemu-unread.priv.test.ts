/**
 * Reading back what a process left unread on its TAP device
 * (src/host/qemu-unread.ts) — the source's way to recover the frames a
 * stopped QEMU never took — against a real TAP device in a namespace this
 * test creates, held by a process that never reads it (python3 holding the
 * device's file, as a stopped QEMU does):
 *
 *   - the holder's descriptor is found by the device's name in its fdinfo
 *   - the frames the kernel queued on the device (its ARP requests for a
 *     neighbour that never answers) come back whole, then nothing (EAGAIN, not a hang: the taken descriptor is
 *     non-blocking)
 *   - a device the process does not hold, and a process that is gone, are
 *     QemuUnreadErrors naming them
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QemuUnreadError } from '../../src/host/errors.ts';
import { tapFdOf, unreadTapFrames } from '../../src/host/qemu-unread.ts';
import { requireTools, useNetns } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';

// Opens /dev/net/tun as TAP device argv[1] (no packet information), says so, and never reads.
const HOLDER = `
import fcntl, os, struct, sys, time
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', sys.argv[1].encode(), 0x0002 | 0x1000))
print('holding', flush=True)
time.sleep(600)
`;

test('the frames queued on a TAP device its holder never read come back whole, then nothing', { timeout: 120_000 }, async (t) => {
  requireTools(['python3', 'ping', 'ip']);
  const h = await useNetns(t, 'vunr-');
  const ns = await h.namespace();
  const dev = 'vunr0';
  const holder = h.spawn(ns, ['python3', '-c', HOLDER, dev]);
  t.after(() => { holder.kill('SIGKILL'); });
  let said = '';
  holder.stdout!.on('data', (d: Buffer) => { said += d.toString(); });
  await waitFor(() => said.includes('holding'), 'the holder holding the TAP device');
  const pid = holder.pid!;
  // `ip netns exec` execs the command: the pid is the holder's own.
  await waitFor(() => tapFdOf(pid, dev), 'the holder\'s descriptor of the device in its fdinfo');
  await h.addAddress(ns, dev, '10.77.0.1/24');
  await h.linkUp(ns, dev);
  // The kernel resolves a neighbour that never answers: its ARP requests queue on the device, unread.
  await h.exec(ns, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.2'], { allowFailure: true });
  const frames = await waitFor(() => {
    const got = unreadTapFrames(pid, dev, 100);
    return got.length > 0 ? got : undefined;
  }, 'frames queued on the device');
  t.diagnostic(`${frames.length} frames read back`);
  const arps = frames.filter((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && f.subarray(38, 42).equals(Buffer.from([10, 77, 0, 2])));
  assert.ok(arps.length >= 1, `ARP requests for 10.77.0.2 among ${frames.length} frames: ${frames.map((f) => f.subarray(12, 14).toString('hex')).join(' ')}`);
  for (const f of frames) assert.ok(f.length >= 42 && f.length <= 1518, `a whole Ethernet frame (${f.length} bytes)`);
  assert.deepEqual(unreadTapFrames(pid, dev, 100), [], 'read once: nothing is left, and the read did not block');

  assert.throws(() => unreadTapFrames(pid, 'vunr-none', 10), (err: unknown) => err instanceof QemuUnreadError && /has no descriptor of the TAP device vunr-none/.test(err.message));
  holder.kill('SIGKILL');
  await waitFor(() => holder.exitCode !== null || holder.signalCode !== null, 'the holder gone');
  assert.throws(() => unreadTapFrames(pid, dev, 10), (err: unknown) => err instanceof QemuUnreadError && err.message.includes(String(pid)));
});
