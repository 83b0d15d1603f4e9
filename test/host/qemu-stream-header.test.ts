/**
 * The vnet-qemu/1 header before QEMU's migration stream
 * (src/host/qemu-stream-header.ts): what the destination builds QEMU's
 * command line from, so checked strictly, every refusal a typed error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QemuStreamHeaderError } from '../../src/host/errors.ts';
import { encodeQemuStreamHeader, parseQemuStreamHeader } from '../../src/host/qemu-stream-header.ts';

test('a header round-trips, the MAC normalised', () => {
  const line = encodeQemuStreamHeader({ memoryMiB: 128, mac: '02:00:00:00:0a:00' }).toString('latin1');
  assert.ok(line.endsWith('\n'));
  assert.deepEqual(parseQemuStreamHeader(line.trimEnd()), { memoryMiB: 128, mac: '02:00:00:00:0a:00' });
  assert.deepEqual(parseQemuStreamHeader('vnet-qemu/1 {"memoryMiB":96,"mac":"02:00:00:00:0A:01"}'), { memoryMiB: 96, mac: '02:00:00:00:0a:01' });
});

test('refuses what is not a vnet-qemu/1 header: another stream, not JSON, fields missing, out of range or unknown', () => {
  for (const bad of [
    'vnet-migrate/1 x 0 1',
    '',
    'vnet-qemu/1 {',
    'vnet-qemu/1 []',
    'vnet-qemu/1 {"memoryMiB":128}',
    'vnet-qemu/1 {"memoryMiB":64,"mac":"02:00:00:00:0a:00"}',
    'vnet-qemu/1 {"memoryMiB":128.5,"mac":"02:00:00:00:0a:00"}',
    'vnet-qemu/1 {"memoryMiB":128,"mac":"nope"}',
    'vnet-qemu/1 {"memoryMiB":128,"mac":"02:00:00:00:0a:00","args":"-device x"}',
  ]) {
    const r = parseQemuStreamHeader(bad);
    assert.ok(r instanceof QemuStreamHeaderError, bad);
    assert.equal(r.code, 'VNET_ERR_HOST_QEMU_HEADER');
  }
});
