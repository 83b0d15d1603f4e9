/**
 * The vnet-qemu-ram/1 line on a QEMU migration's second channel
 * (src/host/qemu-ram-line.ts), read off a channel in any chunking
 * (readQemuRamLine, src/host/qemu-ram-verify.ts): the source's RAM digest,
 * checked strictly, every refusal a typed error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { QemuRamLineError } from '../../src/host/errors.ts';
import { encodeQemuRamLine, parseQemuRamLine } from '../../src/host/qemu-ram-line.ts';
import { readQemuRamLine } from '../../src/host/qemu-ram-verify.ts';

const DIGEST = { xxh64: '53b337df42825c91', bytes: 128 * 1024 * 1024 };

test('a digest line round-trips', () => {
  const line = encodeQemuRamLine(DIGEST).toString('latin1');
  assert.equal(line, 'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":134217728}\n');
  assert.deepEqual(parseQemuRamLine(line.trimEnd()), DIGEST);
});

test('refuses what is not a vnet-qemu-ram/1 line: another line, not JSON, fields missing, malformed, out of range or unknown', () => {
  for (const bad of [
    'vnet-qemu/1 {"memoryMiB":128,"mac":"02:00:00:00:0a:00"}',
    '',
    'vnet-qemu-ram/1 {',
    'vnet-qemu-ram/1 []',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91"}',
    'vnet-qemu-ram/1 {"bytes":134217728}',
    'vnet-qemu-ram/1 {"xxh64":"53B337DF42825C91","bytes":134217728}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c9","bytes":134217728}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":134217729}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":0}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":8589934592}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":"134217728"}',
    'vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":134217728,"extra":1}',
  ]) {
    const r = parseQemuRamLine(bad);
    assert.ok(r instanceof QemuRamLineError, bad);
    assert.equal(r.code, 'VNET_ERR_HOST_QEMU_RAM_LINE');
  }
});

test('the line is read off a channel split at every byte; a channel that ends or closes without it, or sends too long a line, is a typed error', async () => {
  const bytes = encodeQemuRamLine(DIGEST);
  for (let split = 1; split < bytes.length; split++) {
    const ch = new PassThrough();
    const got = readQemuRamLine(ch, new AbortController().signal);
    ch.write(bytes.subarray(0, split));
    ch.write(bytes.subarray(split));
    assert.deepEqual(await got, DIGEST, `split at ${split}`);
  }
  const ended = new PassThrough();
  const r1 = readQemuRamLine(ended, new AbortController().signal);
  ended.end(Buffer.from('vnet-qemu-ram/1 {"xx'));
  const e1 = await r1;
  assert.ok(e1 instanceof QemuRamLineError);
  assert.match(e1.message, /closed without its vnet-qemu-ram\/1 line/);
  const long = new PassThrough();
  const r2 = readQemuRamLine(long, new AbortController().signal);
  long.write(Buffer.alloc(1000, 0x41));
  const e2 = await r2;
  assert.ok(e2 instanceof QemuRamLineError);
  assert.match(e2.message, /longer than/);
  const cancelled = new AbortController();
  const r3 = readQemuRamLine(new PassThrough(), cancelled.signal);
  cancelled.abort();
  assert.ok((await r3) instanceof QemuRamLineError);
});
