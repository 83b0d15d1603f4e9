/**
 * Finding a QEMU guest's RAM in its process (src/host/qemu-ram-digest.ts)
 * from the text of /proc/PID/maps, and the digest's refusals. The digest of
 * a real guest (against QEMU's own pmemsave of its RAM) is in
 * test/host/qemu-ram-digest.priv.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QemuRamDigestError } from '../../src/host/errors.ts';
import { digestQemuRam, findRamMapping } from '../../src/host/qemu-ram-digest.ts';

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
