/**
 * The daemon's NBD server (src/host/nbd-server.ts) serving an ImageDisk on
 * a Unix socket, against the tests' client (test/helpers/nbd-client.ts) and
 * against QEMU's own client (qemu-io, qemu-img; Debian package qemu-utils):
 * the socket is owner-only; the handshake; reads are the image's bytes
 * (fetched on demand), writes go to the VM's overlay and read back; FLUSH;
 * requests past the export's end are EINVAL; bad bytes close that
 * connection only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ManualClock } from '../../src/common/clock.ts';
import { blocksOf, ImageDisk } from '../../src/host/image-disk.ts';
import { CLIENT_FLAG, CMD, CMD_FLAG, encodeClientFlags, encodeGoData, encodeOption, encodeRequest, ERRNO, OPT, REP, TRANSMISSION_FLAG } from '../../src/host/nbd-codec.ts';
import { imageExport, NbdServer } from '../../src/host/nbd-server.ts';
import { ChunkFetcher } from '../../src/images/chunk-fetcher.ts';
import { createChunkHasher } from '../../src/images/chunk-digest.ts';
import { ChunkStore } from '../../src/images/chunk-store.ts';
import { chunkImage } from '../../src/images/manifest.ts';
import { BLOCK_SIZE } from '../../src/migration/guest.ts';
import { ModelGuest } from '../../src/migration/guests/memory-guest.ts';
import { capturingLogger, type LogRecord, WARN } from '../helpers/log-capture.ts';
import { NbdTestClient } from '../helpers/nbd-client.ts';

const run = promisify(execFile);
const CHUNK = 4 * BLOCK_SIZE;

async function serve(t: { after(fn: () => void | Promise<void>): void }, size = 16 * CHUNK - 1000): Promise<{ bytes: Uint8Array; disk: ImageDisk; server: NbdServer; dir: string; records: LogRecord[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-nbd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bytes = new Uint8Array(size).map((_, i) => (i * 13 + (i >>> 11)) & 0xff);
  const { manifest, chunkBytes } = chunkImage({ imageId: 'base', version: 1, chunkSize: CHUNK }, bytes, await createChunkHasher());
  const local = await ChunkStore.open({ site: 'here', dir: join(dir, 'here') });
  const replica = await ChunkStore.open({ site: 'near', dir: join(dir, 'near') });
  for (const b of chunkBytes) await replica.put(b);
  const guest = new ModelGuest({ name: 'vm1', pageCount: 4, blockCount: blocksOf(manifest), representation: 'bytes' });
  const disk = new ImageDisk({ clock: new ManualClock(0) }, { manifest, disk: guest.disk!, fetcher: new ChunkFetcher({ local, replicas: [replica], latencyMs: () => 5 }) });
  const { logger, records } = capturingLogger();
  const server = await NbdServer.listen({ logger }, { path: join(dir, 'vm1.nbd'), export: imageExport('vm1', disk), maxPayloadBytes: 1 << 20 });
  t.after(() => server.close());
  return { bytes, disk, server, dir, records };
}

test('the socket is owner-only; GO answers size and flags; reads are the image\'s, fetched on demand; writes read back; FLUSH', async (t) => {
  const { bytes, disk, server } = await serve(t);
  assert.equal(statSync(server.path).mode & 0o777, 0o600);
  const { client, size, flags } = await NbdTestClient.open(server.path, 'vm1');
  t.after(() => client.close());
  assert.equal(size, BigInt(bytes.length));
  assert.equal(flags & (TRANSMISSION_FLAG.hasFlags | TRANSMISSION_FLAG.sendFlush), TRANSMISSION_FLAG.hasFlags | TRANSMISSION_FLAG.sendFlush);
  assert.equal(flags & TRANSMISSION_FLAG.readOnly, 0);
  const r = await client.read(CHUNK - 100, 300);
  assert.equal(r.error, 0);
  assert.deepEqual(new Uint8Array(r.data), bytes.subarray(CHUNK - 100, CHUNK + 200));
  assert.equal(disk.filledChunks, 2, 'only the chunks the read touched were fetched');
  const mine = new Uint8Array(5000).fill(0x5a);
  assert.equal((await client.write(3 * CHUNK + 7, mine, CMD_FLAG.fua)).error, 0);
  assert.equal((await client.command(CMD.flush)).error, 0);
  assert.deepEqual(new Uint8Array((await client.read(3 * CHUNK, 5100)).data), Uint8Array.from([...bytes.subarray(3 * CHUNK, 3 * CHUNK + 7), ...mine, ...bytes.subarray(3 * CHUNK + 5007, 3 * CHUNK + 5100)]));
  assert.deepEqual(await disk.read(3 * CHUNK + 7, 5000), mine, 'the write is in the VM\'s overlay');
  assert.equal((await client.command(CMD.writeZeroes, 10 * CHUNK, 2 * BLOCK_SIZE)).error, 0);
  assert.deepEqual(new Uint8Array((await client.read(10 * CHUNK, 2 * BLOCK_SIZE)).data), new Uint8Array(2 * BLOCK_SIZE));
  client.send(encodeRequest({ type: CMD.disc, cookie: 99n, offset: 0, length: 0 }));
  await client.closedByServer();
});

test('requests past the export\'s end, too long, or not offered: EINVAL, and the connection goes on', async (t) => {
  const { bytes, server } = await serve(t);
  const { client } = await NbdTestClient.open(server.path, 'vm1');
  t.after(() => client.close());
  assert.equal((await client.command(CMD.read, bytes.length - 10, 11)).error, ERRNO.einval);
  assert.equal((await client.write(bytes.length - 2, Uint8Array.of(1, 2, 3))).error, ERRNO.einval, 'the write\'s bytes are read and dropped');
  assert.equal((await client.command(CMD.read, 0, (1 << 20) + 1)).error, ERRNO.einval);
  assert.equal((await client.command(CMD.trim, 0, 4096)).error, ERRNO.einval);
  const r = await client.read(bytes.length - 10, 10);
  assert.equal(r.error, 0);
  assert.deepEqual(new Uint8Array(r.data), bytes.subarray(bytes.length - 10));
});

test('the handshake: LIST names the export; an unknown export, STARTTLS and structured replies are refused; EXPORT_NAME the old way', async (t) => {
  const { bytes, server } = await serve(t);
  const { client, flags } = await NbdTestClient.greeted(server.path);
  t.after(() => client.close());
  assert.equal(flags, 3, 'fixed newstyle, no zeroes');
  client.send(encodeClientFlags(CLIENT_FLAG.fixedNewstyle));
  client.send(encodeOption(OPT.list));
  const entry = await client.optionReply();
  assert.equal(entry.type, REP.server);
  assert.equal(entry.data.subarray(4).toString(), 'vm1');
  assert.equal((await client.optionReply()).type, REP.ack);
  client.send(encodeOption(OPT.go, encodeGoData('other')));
  assert.equal((await client.optionReply()).type, REP.errUnknown);
  client.send(encodeOption(OPT.startTls));
  assert.equal((await client.optionReply()).type, REP.errUnsup);
  client.send(encodeOption(OPT.structuredReply));
  assert.equal((await client.optionReply()).type, REP.errUnsup);
  client.send(encodeOption(OPT.exportName, new TextEncoder().encode('vm1')));
  const reply = await client.readExactly(134);
  assert.equal(reply.readBigUInt64BE(0), BigInt(bytes.length));
  assert.ok(reply.subarray(10).every((b) => b === 0), '124 zero bytes for a client that did not say NO_ZEROES');
  assert.equal((await client.read(0, 16)).error, 0);
});

test('bad bytes close that connection only: the server and its other clients go on', async (t) => {
  const { bytes, server, records } = await serve(t);
  const { client: good } = await NbdTestClient.open(server.path, 'vm1');
  t.after(() => good.close());
  const { client: bad } = await NbdTestClient.open(server.path, 'vm1');
  bad.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'.padEnd(28, ' ')));
  await bad.closedByServer();
  assert.ok(records.some((r) => r.level === WARN && r['code'] === 'VNET_ERR_HOST_NBD_PROTOCOL' && /request magic/.test(String(r['detail']))), 'the refusal is logged with its code');
  const { client: liar } = await NbdTestClient.greeted(server.path);
  liar.send(encodeClientFlags(0x80));
  await liar.closedByServer();
  const { client: abort } = await NbdTestClient.greeted(server.path);
  abort.send(encodeClientFlags(CLIENT_FLAG.fixedNewstyle | CLIENT_FLAG.noZeroes));
  abort.send(encodeOption(OPT.abort));
  assert.equal((await abort.optionReply()).type, REP.ack);
  await abort.closedByServer();
  const r = await good.read(100, 100);
  assert.deepEqual(new Uint8Array(r.data), bytes.subarray(100, 200));
});

test('a path taken by something that is not a socket is refused, and left alone', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-nbd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'taken'), 'mine');
  const ex = { name: 'x', size: 0, read: async () => new Uint8Array(0), write: async () => {} };
  await assert.rejects(NbdServer.listen({ logger: capturingLogger().logger }, { path: join(dir, 'taken'), export: ex }), { code: 'VNET_ERR_HOST_NBD_SERVER' });
  assert.equal(readFileSync(join(dir, 'taken'), 'utf8'), 'mine');
});

test('a server closing while the next one listens on its path (a port reopened by a reload): the new socket survives and serves', async (t) => {
  const { bytes, disk, server } = await serve(t);
  const { client: old } = await NbdTestClient.open(server.path, 'vm1');
  t.after(() => old.close());
  const closing = server.close();
  const next = await NbdServer.listen({ logger: capturingLogger().logger }, { path: server.path, export: imageExport('vm1', disk) });
  t.after(() => next.close());
  await closing;
  await old.closedByServer();
  assert.equal(statSync(next.path).mode & 0o777, 0o600);
  const { client } = await NbdTestClient.open(next.path, 'vm1');
  t.after(() => client.close());
  assert.deepEqual(new Uint8Array((await client.read(0, 64)).data), bytes.subarray(0, 64));
  await next.close();
  assert.equal(existsSync(next.path), false, 'closed, its socket is gone');
});

/** qemu-io / qemu-img (Debian qemu-utils): skipped where missing, except in CI or the privileged tier, where it fails. */
function qemuUtils(t: { skip(msg: string): void }): boolean {
  const missing = ['qemu-io', 'qemu-img'].filter((tool) => !process.env.PATH?.split(':').some((d) => { try { return statSync(join(d, tool)).isFile(); } catch { return false; } }));
  if (missing.length === 0) return true;
  const message = `missing ${missing.join(', ')} (Debian package qemu-utils)`;
  if (process.env.VNET_REQUIRE_PRIVILEGED === '1' || process.env.CI !== undefined) assert.fail(message);
  t.skip(message);
  return false;
}

test('QEMU\'s NBD client: qemu-img reads the whole export as the image\'s bytes; qemu-io writes a block and reads it back', async (t) => {
  if (!qemuUtils(t)) return;
  // A whole number of sectors, as a disk QEMU boots is (qemu-img 7.2's convert waits forever on an NBD export of an odd size).
  const { bytes, disk, server, dir } = await serve(t, 16 * CHUNK);
  const uri = `nbd+unix:///vm1?socket=${server.path}`;
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, join(dir, 'copy.raw')]);
  assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'copy.raw'))), bytes);
  const at = 5 * CHUNK;
  await run('qemu-io', ['-f', 'raw', '-c', `write -P 0xa7 ${at} 4096`, '-c', 'flush', uri]);
  const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', `read -P 0xa7 ${at} 4096`, '-c', `read -v ${at + 4096} 16`, uri]);
  assert.match(stdout, /read 4096\/4096 bytes/);
  assert.doesNotMatch(stdout, /Pattern verification failed/);
  const after = [...bytes.subarray(at + 4096, at + 4096 + 16)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  assert.ok(stdout.includes(after), `the bytes after the block are still the image's: ${after}`);
  assert.deepEqual(await disk.read(at, 4096), new Uint8Array(4096).fill(0xa7), 'the block is in the VM\'s overlay');
});
