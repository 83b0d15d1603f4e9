/**
 * The RAM digest of a real, stopped QEMU guest (src/host/qemu-ram-digest.ts):
 * QEMU under TCG with scripts/guest-build.sh's kernel and initramfs, 128 MiB,
 * its NIC on a stream port with nothing behind it.
 *
 *   - the mapping found is the guest's RAM: its bytes are those QEMU's own
 *     `pmemsave` writes for the same guest-physical range
 *   - a stopped guest digests the same twice; once it ran a little, not
 *   - the native reader (the default with the addon built) and the proc-mem
 *     fallback give the same digest of the guest
 *   - the time a digest of 128 MiB takes on each is printed (it adds to a
 *     migrated guest's downtime on the destination); no figure is asserted
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { StreamPort } from '../../src/dataplane/stream-port.ts';
import { QemuHost } from '../../src/host/qemu-host.ts';
import { digestQemuRam, findRamMapping } from '../../src/host/qemu-ram-digest.ts';
import { digestStoppedGuest } from '../../src/host/qemu-ram-verify.ts';
import { requireTools } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const MIB = 1024 * 1024;

test('a stopped QEMU guest\'s RAM digest: read from its RAM mapping, the same twice, different once the guest ran', { timeout: 600_000 }, async (t) => {
  requireTools(['qemu-system-x86_64']);
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qram-'));
  const qemu = new QemuHost({ logger, clock: realClock }, { dir, bootTimeoutMs: 240_000 });
  const port = await StreamPort.listen({ name: 'qram', mac: parseMac('02:00:00:00:00:41'), mtu: 1500, path: qemu.socketPath('qram'), logger });
  const vm = await qemu.boot({ name: 'qram', mac: port.mac, port: 'qram', socketPath: port.path, memoryMiB: 128 });
  t.after(async () => {
    await vm.close();
    await port.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const pid = vm.process.pid!;
  await vm.qmp.execute('stop');

  // The mapping is the guest's RAM: 16 MiB from guest-physical 1 MiB (above the ROM and VGA holes) as pmemsave writes them.
  const mapping = findRamMapping(readFileSync(`/proc/${pid}/maps`, 'latin1'), 128);
  assert.ok(!(mapping instanceof Error), String(mapping));
  const dump = join(dir, 'ram.bin');
  await vm.qmp.execute('pmemsave', { val: MIB, size: 16 * MIB, filename: dump }, { timeoutMs: 60_000 });
  const mem = await open(`/proc/${pid}/mem`, 'r');
  const mine = Buffer.alloc(16 * MIB);
  try {
    assert.equal((await mem.read(mine, 0, mine.length, mapping.start + MIB)).bytesRead, mine.length);
  } finally {
    await mem.close();
  }
  assert.ok(mine.equals(readFileSync(dump)), 'the mapping\'s bytes are the guest\'s RAM as QEMU saves it');

  const first = await digestStoppedGuest(vm, realClock, new AbortController().signal);
  const second = await digestStoppedGuest(vm, realClock, new AbortController().signal);
  assert.equal(first.bytes, 128 * MIB);
  assert.equal(first.reader, 'native', 'the TAP addon is built: the daemon digests natively');
  assert.match(first.xxh64, /^[0-9a-f]{16}$/);
  assert.equal(second.xxh64, first.xxh64, 'a stopped guest digests the same twice');
  // The fallback path (a daemon without the addon) gives the same digest of the same guest.
  const t0 = performance.now();
  const procMem = await digestQemuRam(pid, 128, { reader: 'proc-mem' });
  const procMemMs = Math.round(performance.now() - t0);
  assert.equal(procMem.xxh64, first.xxh64, 'the proc-mem reader (/proc/PID/mem + xxhash-wasm) agrees with the native one');
  t.diagnostic(`RAM digest of 128 MiB: native (process_vm_readv + addon xxh64, 512 KiB buffer) ${first.digestMs} ms, then ${second.digestMs} ms; proc-mem (/proc/PID/mem in 4 MiB chunks + xxhash-wasm) ${procMemMs} ms (a loaded 2-core machine: noisy)`);

  // The guest runs a little (its timer ticks write its memory): the digest of the stopped guest changes.
  await waitFor(async () => {
    await vm.qmp.execute('cont');
    await vm.qmp.execute('stop');
    return (await digestQemuRam(pid, 128)).xxh64 !== first.xxh64;
  }, 'the RAM digest changed once the guest ran', 120_000);
});
