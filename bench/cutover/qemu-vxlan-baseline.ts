/**
 * The baseline for a QEMU guest: the same kernel bridges joined by VXLAN
 * (vxlan-baseline.ts), the guest on a TAP device of h1's bridge, moved by a
 * plain QEMU live migration (over a Unix socket on this machine) to a QEMU
 * started with `-incoming` whose TAP device is on h2's bridge; the
 * destination runs it as soon as it is loaded and QEMU's own RARP announce
 * tells the bridges (what libvirt does on a Linux-bridge / VXLAN setup).
 *
 *   h1 ── br0 ── tap qx0 ── QEMU (source)      h2 ── br0 ── tap qx0 ── QEMU (-incoming)
 *   h3 ── br0 ── pp ── vmp (pings the guest, bounces a checked stream off its port 7)
 *
 * Figures as the other rows, plus the guest's own downtime: the source
 * QEMU's STOP event to the destination's RESUME (QEMU's timestamps).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { realClock } from '../../src/common/clock.ts';
import { connectWithRetry, ensureGuestImage } from '../../src/migration/qemu/qemu-guest-recorder.ts';
import { QemuProcess } from '../../src/migration/qemu/qemu-process.ts';
import type { QmpClient } from '../../src/migration/qemu/qmp-client.ts';
import { qemuVmArgs } from '../../src/host/qemu-vm.ts';
import { answersAfterResumeMs } from './vnet-overlay.ts';
import { startEchoStream, startPing } from './probes.ts';
import { vxlanHosts, type CutoverFigures } from './vxlan-baseline.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const GUEST_IP = '10.252.0.10';
const MAC = 0x02_00_00_0c_00_10;

export async function qemuVxlanBaseline(tag: string): Promise<CutoverFigures> {
  const net = vxlanHosts(tag);
  const { ns, ip } = net;
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qemu-vxlan-'));
  const log = silentLogger();
  const image = await ensureGuestImage();
  const spec = { name: 'vxlan-guest', mac: MAC, socketPath: '', memoryMiB: 128, ip: `${GUEST_IP}/24`, image };
  const tap = 'tap,id=n0,ifname=qx0,script=no,downscript=no';
  const migration = `unix:${join(dir, 'mig.sock')}`;
  const started: Array<{ proc: QemuProcess; qmp: QmpClient | undefined }> = [];
  const start = async (host: string, qmpPath: string, incoming: string | false): Promise<{ proc: QemuProcess; qmp: QmpClient }> => {
    const proc = new QemuProcess('ip', ['netns', 'exec', host, 'qemu-system-x86_64', ...qemuVmArgs(spec, qmpPath, incoming, tap)], log);
    const entry: { proc: QemuProcess; qmp: QmpClient | undefined } = { proc, qmp: undefined };
    started.push(entry);
    proc.start();
    entry.qmp = await connectWithRetry(qmpPath, proc, realClock, realClock.now() + 120_000, log, undefined);
    ip(host, 'link', 'set', 'qx0', 'master', 'br0', 'up');
    return { proc, qmp: entry.qmp };
  };
  try {
    const src = await start(ns.h1, join(dir, 'src.qmp'), false);
    await src.proc.waitForConsole('VNET_NET_READY', 240_000, 240_000);
    net.reach(GUEST_IP);
    const dst = await start(ns.h2, join(dir, 'dst.qmp'), migration);
    for (const q of [src.qmp, dst.qmp]) await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await src.qmp.execute('migrate-set-parameters', { 'downtime-limit': 300, 'max-bandwidth': 10 * 1024 ** 3 });

    const stream = startEchoStream(ns.vmp, GUEST_IP, 7);
    const ping = startPing(ns.vmp, GUEST_IP, 1000); // 10 s at 10 ms
    await sleep(1500);
    const stopped = src.qmp.waitForEvent('STOP', { timeoutMs: 300_000 });
    const resumed = dst.qmp.waitForEvent('RESUME', { timeoutMs: 300_000 });
    await src.qmp.execute('migrate', { uri: migration });
    const [stop, resume] = await Promise.all([stopped, resumed]);
    const pingFigures = await ping.done;
    const streamFigures = await stream.stop();
    const stoppedAt = stop.timestamp * 1000;
    const resumedAt = resume.timestamp * 1000;
    return {
      path: 'kernel VXLAN, QEMU guest (QEMU migration)',
      ping: pingFigures,
      stream: streamFigures,
      cutoverMs: answersAfterResumeMs(pingFigures, stoppedAt, resumedAt),
      guestDowntimeMs: resumedAt - stoppedAt,
    };
  } finally {
    for (const { proc, qmp } of started) {
      await proc.stop(qmp);
      await qmp?.close().catch(() => undefined);
    }
    net.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
