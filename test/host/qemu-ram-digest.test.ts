/**
 * Finding a QEMU guest's RAM in its process (src/host/qemu-ram-digest.ts)
 * from the text of /proc/PID/maps, the digest's refusals, and both readers
 * (native: process_vm_readv and the addon's xxh64; proc-mem: /proc/PID/mem
 * and xxhash-wasm) over a child process's anonymous mapping of QEMU's shape
 * (test/helpers/memory-child.ts). The test reads its child as its parent:
 * allowed for the same uid where Yama's ptrace_scope is 0 or 1, or where the
 * kernel has no Yama (as on the machines this runs on); scope 2 needs root.
 * The digest of a real guest (against QEMU's own pmemsave of its RAM) is in
 * test/host/qemu-ram-digest.priv.test.ts; a reader without ptrace access in
 * test/host/ram-digest-native.priv.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QemuRamDigestError } from '../../src/host/errors.ts';
import { defaultRamReader, digestProcessRange, digestQemuRam, findRamMapping, type RamReader } from '../../src/host/qemu-ram-digest.ts';
import { startMemoryChild } from '../helpers/memory-child.ts';

const MIB = 1024 * 1024;
const PAGE = 4096;
const READERS: readonly RamReader[] = ['native', 'proc-mem'];
const NO_SUCH_PID = 2 ** 31 - 1; // above any pid_max

// The maps of a real QEMU 7.2 under TCG with -m 128M (trimmed): the guest's RAM is the anonymous rw-p 128 MiB mapping.
const QEMU_MAPS = `564f77686000-564f77a8d000 r--p 00000000 fe:00 2170935                    /usr/bin/qemu-system-x86_64
564f7846a000-564f78813000 rw-p 00de3000 fe:00 2170935                    /usr/bin/qemu-system-x86_64
564fb81ec000-564fb9118000 rw-p 00000000 00:00 0                          [heap]
7fe57fe00000-7fe587e00000 rw-p 00000000 00:00 0 
7fe588021000-7fe58c000000 ---p 00000000 00:00 0 
7fe590000000-7fe5cffff000 rwxp 00000000 00:00 0 
7fe5d4400000-7fe5d4600000 rw-p 00000000 00:00 0 
7fe5d4bb9000-7fe5d53b9000 rw-p 00000000 00:00 0 
7ffd5c2a1000-7ffd5c2c2000 rw-p 00000000 00:00 0                          [stack]
`;

test('the guest\'s RAM is the one anonymous rw-p mapping of exactly its size', () => {
  assert.deepEqual(findRamMapping(QEMU_MAPS, 128), { start: 0x7fe57fe00000, end: 0x7fe587e00000 });
  // The 1 GiB TCG code buffer is rwx, and the heap is named: neither is taken for a 1024 MiB guest's RAM.
  const none = findRamMapping(QEMU_MAPS, 1024);
  assert.ok(none instanceof QemuRamDigestError);
  assert.equal(none.code, 'VNET_ERR_HOST_QEMU_RAM_DIGEST');
  assert.match(none.message, /no anonymous rw-p mapping of exactly 1024 MiB.*rwxp 1024\.0 MiB/);
});

test('no such mapping, or two, is a typed error naming what was found; a file-backed mapping of that size is not RAM', () => {
  const r = findRamMapping(QEMU_MAPS, 256);
  assert.ok(r instanceof QemuRamDigestError);
  assert.match(r.message, /no anonymous rw-p mapping of exactly 256 MiB in QEMU's maps \(mappings of at least 128 MiB: rw-p 128\.0 MiB, rwxp 1024\.0 MiB\)/);
  const two = findRamMapping(`${QEMU_MAPS}7fe600000000-7fe608000000 rw-p 00000000 00:00 0 \n`, 128);
  assert.ok(two instanceof QemuRamDigestError);
  assert.match(two.message, /2 anonymous rw-p mappings of exactly 128 MiB in QEMU's maps \(7fe57fe00000, 7fe600000000\)/);
  const file = findRamMapping('7fe57fe00000-7fe587e00000 rw-p 00000000 fe:00 42 /dev/shm/ram\n', 128);
  assert.ok(file instanceof QemuRamDigestError);
  for (const junk of ['', 'garbage\n', '7fe587e00000-7fe57fe00000 rw-p 00000000 00:00 0\n']) assert.ok(findRamMapping(junk, 128) instanceof QemuRamDigestError);
});

test('a process with no mapping of that size, one that does not exist, and a chunk out of range are typed errors', async () => {
  await assert.rejects(digestQemuRam(process.pid, 4093), (e: unknown) => e instanceof QemuRamDigestError && /no anonymous rw-p mapping of exactly 4093 MiB/.test(e.message));
  await assert.rejects(digestQemuRam(2 ** 30, 128), (e: unknown) => e instanceof QemuRamDigestError && /cannot read QEMU 1073741824's maps/.test(e.message));
  await assert.rejects(digestQemuRam(process.pid, 128, { chunkBytes: 100 }), QemuRamDigestError);
});

test('both readers give the same digest of a child\'s anonymous mapping, at any chunk size; one byte changed changes it', { timeout: 120_000 }, async (t) => {
  const child = await startMemoryChild(16 * MIB, 1);
  t.after(() => child.close());
  assert.equal(defaultRamReader(), 'native', 'the TAP addon is built: the native reader is the default');
  const byDefault = await digestQemuRam(child.pid, 16);
  assert.equal(byDefault.reader, 'native');
  assert.equal(byDefault.bytes, 16 * MIB);
  const wasm = await digestQemuRam(child.pid, 16, { reader: 'proc-mem' });
  assert.equal(wasm.reader, 'proc-mem');
  assert.equal(wasm.xxh64, byDefault.xxh64, 'native and proc-mem agree');
  // Pieces that cut the hash's 32-byte stripes and the pages: 4 KiB, 5000 bytes, 1 MiB + 7 bytes, 16 MiB (all of it in one read).
  for (const chunkBytes of [PAGE, 5000, MIB + 7, 16 * MIB]) {
    for (const reader of READERS) assert.equal((await digestProcessRange(child.pid, child.mapping, { reader, chunkBytes })).xxh64, byDefault.xxh64, `${reader}, chunks of ${chunkBytes}`);
  }

  await child.poke(12_345_678, 0x5a);
  await child.poke(12_345_679, 0xa5);
  const after = await digestQemuRam(child.pid, 16, { reader: 'native' });
  assert.notEqual(after.xxh64, byDefault.xxh64, 'two bytes changed: the digest changed');
  assert.equal((await digestQemuRam(child.pid, 16, { reader: 'proc-mem' })).xxh64, after.xxh64);
  await child.poke(16 * MIB - 1, 0);
  await child.poke(16 * MIB - 1, 1);
  const last = await digestQemuRam(child.pid, 16, { reader: 'native' });
  assert.notEqual(last.xxh64, after.xxh64, 'the last byte of the mapping is in the digest');
  assert.equal((await digestQemuRam(child.pid, 16, { reader: 'proc-mem' })).xxh64, last.xxh64);
});

test('a process that does not exist, a range not mapped, and a cancelled digest are typed errors; a failed read names pid, address and errno', { timeout: 120_000 }, async (t) => {
  const child = await startMemoryChild(16 * MIB, 2);
  t.after(() => child.close());
  const { start, end } = child.mapping;
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const failsWith = async (reader: RamReader, pid: number, range: { start: number; end: number }, check: (e: QemuRamDigestError) => void): Promise<void> => {
    await assert.rejects(digestProcessRange(pid, range, { reader }), (e: unknown) => {
      assert.ok(e instanceof QemuRamDigestError, `${reader}: ${String(e)}`);
      assert.equal(e.code, 'VNET_ERR_HOST_QEMU_RAM_DIGEST');
      assert.equal(e.pid, pid);
      check(e);
      return true;
    });
  };

  await failsWith('native', NO_SUCH_PID, child.mapping, (e) => {
    assert.equal(e.errno, 3);
    assert.equal(e.address, start);
    assert.match(e.message, new RegExp(`cannot read QEMU ${NO_SUCH_PID}'s RAM at ${hex(start)}: process_vm_readv failed with ESRCH \\(errno 3\\): the process is gone`));
  });
  await failsWith('proc-mem', NO_SUCH_PID, child.mapping, (e) => {
    assert.equal(e.errno, 2);
    assert.match(e.message, new RegExp(`cannot open QEMU ${NO_SUCH_PID}'s memory: ENOENT`));
  });

  // A page below mmap_min_addr: never mapped in any process.
  const unmapped = { start: PAGE, end: 2 * PAGE };
  await failsWith('native', child.pid, unmapped, (e) => {
    assert.equal(e.errno, 14);
    assert.equal(e.address, PAGE);
    assert.match(e.message, new RegExp(`at ${hex(PAGE)}: process_vm_readv failed with EFAULT \\(errno 14\\): that address is not mapped`));
  });
  await failsWith('proc-mem', child.pid, unmapped, (e) => {
    assert.equal(e.errno, 5);
    assert.equal(e.address, PAGE);
    assert.match(e.message, new RegExp(`at ${hex(PAGE)}: read failed with EIO \\(errno 5\\)`));
  });
  // A range that runs one page past the mapping, into the child's PROT_NONE guard: the native reader names
  // the first address it could not read. (/proc/PID/mem reads even PROT_NONE pages, with FOLL_FORCE.)
  await failsWith('native', child.pid, { start, end: end + PAGE }, (e) => {
    assert.equal(e.errno, 14);
    assert.equal(e.address, end, 'the exact page the read stopped at');
  });

  // Cancelled: the abort comes while the worker has 4096 pieces to read.
  for (const reader of READERS) {
    const ac = new AbortController();
    const digest = digestProcessRange(child.pid, child.mapping, { reader, chunkBytes: PAGE, signal: ac.signal });
    ac.abort();
    await assert.rejects(digest, (e: unknown) => e instanceof QemuRamDigestError && /the RAM digest was cancelled/.test(e.message));
  }
  // Still readable after all that.
  assert.equal((await digestProcessRange(child.pid, child.mapping, { reader: 'native' })).bytes, 16 * MIB);
});
