/**
 * The TAP addon's xxh64 (native/tap/xxh64.cc, written from the XXH64
 * specification) against xxhash-wasm's create64(0n), which the proc-mem
 * reader and older daemons use: both must give the same digest of the same
 * bytes, or a native daemon and a fallback one would refuse each other's
 * copies. Also the addon's argument checks; the range digest of another
 * process's memory is in qemu-ram-digest.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import xxhash from 'xxhash-wasm';
import { ramDigestAddon, type RamDigestAddon } from '../../src/host/ram-digest-native.ts';
import { randomInt, seededRandom } from '../../src/topology/seeded-random.ts';

function addon(): RamDigestAddon {
  const a = ramDigestAddon();
  assert.ok(a !== undefined, 'the TAP addon with the RAM digest is built (build/Release/vnet_tap.node)');
  return a;
}

function randomBytes(seed: number, n: number): Buffer {
  const random = seededRandom(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randomInt(random, 256);
  return b;
}

test('native xxh64 equals xxhash-wasm create64(0n) for every length 0..1024 and for 1 MiB + 7 bytes', async () => {
  const wasm = await xxhash();
  const native = addon();
  const data = randomBytes(0x5eed, 1024);
  for (let n = 0; n <= 1024; n++) {
    const bytes = data.subarray(0, n);
    assert.equal(native.xxh64(bytes), wasm.create64(0n).update(bytes).digest(), `length ${n}`);
  }
  const big = randomBytes(7, 1024 * 1024 + 7);
  assert.equal(native.xxh64(big), wasm.create64(0n).update(big).digest());
  // A known value, so that both agreeing on a wrong function would be caught too: XXH64("", 0) is published.
  assert.equal(native.xxh64(new Uint8Array(0)), 0xef46db3751d8e999n);
});

test('native xxh64 streamed over arbitrary chunk boundaries gives the one-shot digest', async () => {
  const wasm = await xxhash();
  const native = addon();
  const random = seededRandom(42);
  for (let run = 0; run < 200; run++) {
    const data = randomBytes(1000 + run, randomInt(random, run < 100 ? 300 : 70_000));
    const want = wasm.create64(0n).update(data).digest();
    const h = new native.Xxh64();
    const cuts: number[] = [];
    for (let at = 0; at < data.length;) {
      // Pieces of 0..40 bytes mostly (stripes cut everywhere), now and then a long one.
      const len = Math.min(data.length - at, randomInt(random, 8) === 0 ? randomInt(random, 5000) : randomInt(random, 41));
      h.update(data.subarray(at, at + len));
      cuts.push(len);
      at += len;
    }
    assert.equal(h.digest(), want, `run ${run}: ${data.length} bytes in pieces ${cuts.slice(0, 20).join(',')}…`);
    assert.equal(h.digest(), want, 'digest() leaves the state as it was');
  }
  // Byte by byte over a length that crosses several stripes.
  const data = randomBytes(9, 100);
  const h = new native.Xxh64();
  for (const b of data) h.update(Uint8Array.of(b));
  assert.equal(h.digest(), wasm.create64(0n).update(data).digest());
});

test('the addon\'s digest functions refuse bad arguments with a TypeError or RangeError naming the argument', () => {
  const native = addon();
  assert.throws(() => native.xxh64('abc' as unknown as Uint8Array), TypeError);
  assert.throws(() => new native.Xxh64().update([1, 2] as unknown as Uint8Array), TypeError);
  assert.throws(() => native.digestProcessMemory(0, 4096, 10, 4096), /pid must be a whole number/);
  assert.throws(() => native.digestProcessMemory(process.pid, -1, 10, 4096), /address must be a whole number/);
  assert.throws(() => native.digestProcessMemory(process.pid, 4096, 1.5, 4096), /length must be a whole number/);
  assert.throws(() => native.digestProcessMemory(process.pid, 4096, 10, 100), /bufferBytes must be a whole number in \[4096, 16777216\]/);
  assert.throws(() => native.digestProcessMemory(process.pid, 2 ** 53 - 10, 100, 4096), /length must be a whole number/);
});
