/**
 * What a stopped QEMU never read from its TAP device, read from QEMU's own
 * file before it quits (the source's commit, source-migration.ts).
 *
 * QEMU decides its switchover: it stops the guest under its global lock,
 * after a last dirty-bitmap sync also taken under it, and while the lock is
 * held its main loop reads nothing — and a stopped guest's QEMU does not
 * read its TAP at all. Frames the daemon delivered to the TAP in those
 * milliseconds wait in the device's queue, and the kernel purges that queue
 * when QEMU closes the device. So at the commit the source takes QEMU's
 * descriptor of the TAP and reads them out:
 *
 *   find    QEMU's descriptor: the /proc/PID/fdinfo/N whose `iff:` line
 *           (the tun driver's) names the device
 *   take    pidfd_getfd (the addon's takeProcessFd, process_fd_addon.cc):
 *           the same open file here, non-blocking as QEMU opened it
 *   read    one frame per read(2) until EAGAIN (at most `max`); then closed
 *
 * They are the newest frames delivered, in order (the queue is FIFO): the
 * port's delivery log (port-outlet.ts) holds copies, and the release sends
 * those. The guest must be stopped for good, or what is read here is taken
 * from it.
 */
import { closeSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { vnetTapAddon } from '../dataplane/tap-device.ts';
import { QemuUnreadError } from './errors.ts';

/** Ethernet frame bound of a read: a TAP without vnet_hdr gives one frame per read, at most its MTU + 18. */
const MAX_FRAME = 65_535;

interface ProcessFdAddon {
  takeProcessFd(pid: number, fd: number): number;
}

/** QEMU process `pid`'s descriptor of TAP device `ifname`, from its fdinfo; undefined if it has none. */
export function tapFdOf(pid: number, ifname: string): number | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch (err) {
    throw new QemuUnreadError(`QEMU ${pid}: cannot list its descriptors: ${(err as Error).message}`, { cause: err });
  }
  for (const fd of fds) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
    } catch {
      continue; // closed meanwhile
    }
    if (/^iff:\s*(\S+)\s*$/m.exec(info)?.[1] === ifname) return Number(fd);
  }
  return undefined;
}

/** The frames queued on TAP `ifname` that QEMU `pid` has not read (oldest first, at most `max`). Throws QemuUnreadError. */
export function unreadTapFrames(pid: number, ifname: string, max: number): Buffer[] {
  const theirs = tapFdOf(pid, ifname);
  if (theirs === undefined) throw new QemuUnreadError(`QEMU ${pid} has no descriptor of the TAP device ${ifname}`);
  const addon = vnetTapAddon() as Partial<ProcessFdAddon>;
  if (typeof addon.takeProcessFd !== 'function') throw new QemuUnreadError('the TAP addon predates takeProcessFd: rebuild it (`npm ci`)');
  let fd: number;
  try {
    fd = addon.takeProcessFd(pid, theirs);
  } catch (err) {
    throw new QemuUnreadError(`cannot take QEMU ${pid}'s descriptor ${theirs} of ${ifname}: ${(err as Error).message}`, { cause: err });
  }
  const frames: Buffer[] = [];
  const buf = Buffer.allocUnsafe(MAX_FRAME);
  try {
    while (frames.length < max) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw new QemuUnreadError(`reading QEMU ${pid}'s TAP ${ifname}: ${(err as Error).message}`, { cause: err });
      }
      if (n === 0) break;
      frames.push(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
  return frames;
}
