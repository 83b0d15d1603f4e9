/**
 * The native forwarder's link side over loopback TCP, without TAP devices
 * (native-forwarder.priv.test.ts has them):
 *
 *   - whatever it does not forward comes up byte for byte, in order: with no
 *     flow installed, the bytes handed up (plus what detach returns) are the
 *     bytes the peer sent, for valid, mutated and random streams in random
 *     chunkings, so the link's decoder sees exactly what it saw before —
 *     the same frames, control messages and typed errors;
 *   - its writes and ours never interleave, and a backlog (a peer that does
 *     not read) is written out in order once the peer reads again;
 *   - a link writer in native mode drops frames while the forwarder's
 *     backlog is over its mark and sends again once the backlog is written;
 *   - options out of range are a typed error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeForwarder } from '../../src/dataplane/native-forwarder.ts';
import { NativeForwarderError } from '../../src/dataplane/errors.ts';
import { FrameDecoder, encodeFrame, type DecoderSink } from '../../src/dataplane/frame-codec.ts';
import { Rand } from '../fuzz/fuzz-kit.ts';
import { mutateBytes, randomChunks } from '../fuzz/mutate.ts';
import { waitFor } from '../helpers/wait.ts';
import { LinkWriter } from '../../src/dataplane/link-writer.ts';
import { recorder, socketPair, validStream } from './native-link-fixtures.ts';

function decodeEvents(bytes: Buffer): string[] {
  const events: string[] = [];
  const sink: DecoderSink = {
    onFrames: (frames) => { for (const f of frames) events.push(`f:${f.offload?.toString('hex') ?? ''}:${f.data.toString('hex')}`); },
    onControl: (m) => events.push(`c:${JSON.stringify(m)}`),
    onDecodeError: (e) => events.push(`e:${e.code}`),
  };
  new FrameDecoder(sink).push(bytes);
  return events;
}


test('with no flow installed, every byte a peer sends comes up unchanged and in order (valid, mutated and random streams, any chunking)', { timeout: 120_000 }, async () => {
  const fwd = NativeForwarder.open();
  try {
    for (let i = 0; i < 120; i++) {
      const rand = new Rand(0x7a7e + i);
      const kind = i % 3;
      const input = kind === 0 ? validStream(rand) : kind === 1 ? mutateBytes(rand, validStream(rand)) : rand.bytes(rand.size(20_000) + 1);
      const { peer, fd, close } = await socketPair();
      const rec = recorder();
      const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink);
      for (const chunk of randomChunks(rand, input)) peer.write(chunk);
      peer.end();
      await waitFor(() => rec.failed.length > 0, `case ${i}: the forwarder sees the peer's end`);
      assert.deepEqual(rec.failed, [0], `case ${i}: an end, not an error`);
      fwd.detach(id); // anything it still held (an incomplete last message) comes up now
      const up = Buffer.concat(rec.chunks);
      assert.ok(up.equals(input), `case ${i}: ${up.length} bytes up for ${input.length} sent`);
      assert.deepEqual(decodeEvents(up), decodeEvents(input), `case ${i}: the decoder sees the same messages and errors`);
      close();
    }
  } finally {
    fwd.close();
  }
});

test('writes through the forwarder reach the peer in order, a backlog included (the peer paused, then reading)', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { peer, fd, close } = await socketPair();
  try {
    peer.pause();
    const rec = recorder();
    const id = fwd.attachLink(fd, 65_563, 8 << 20, rec.sink);
    const sent: Buffer[] = [];
    let backlog = 0;
    for (let i = 0; i < 400; i++) {
      const msg = encodeFrame({ data: Buffer.alloc(16_000, i & 0xff), offload: undefined });
      sent.push(msg);
      backlog = fwd.writeLink(id, [msg.subarray(0, 4), msg.subarray(4)]);
      assert.ok(backlog >= 0, 'the write was taken');
    }
    assert.ok(backlog > 0, 'a peer that does not read leaves a backlog');
    assert.equal(fwd.backlog(id), backlog);
    const got: Buffer[] = [];
    let n = 0;
    const total = sent.reduce((a, b) => a + b.length, 0);
    peer.on('data', (d: Buffer) => { got.push(d); n += d.length; });
    peer.resume();
    await waitFor(() => n >= total, 'the peer received everything');
    assert.ok(Buffer.concat(got).equals(Buffer.concat(sent)), 'byte for byte, in order');
    await waitFor(() => fwd.backlog(id) === 0, 'the backlog is gone');
    fwd.detach(id);
  } finally {
    close();
    fwd.close();
  }
});

test('a link writer through the forwarder drops over the high-water mark and sends again once the backlog is written', { timeout: 60_000 }, async () => {
  const fwd = NativeForwarder.open();
  const { ours, peer, fd, close } = await socketPair();
  try {
    peer.pause();
    const id = fwd.attachLink(fd, 65_563, 256 * 1024, recorder().sink);
    const stats = { txFrames: 0, txBytes: 0, txDropped: 0 };
    const writer = new LinkWriter(ours, stats, 256 * 1024);
    writer.open = true;
    writer.useNative(fwd, id);
    const frame = { data: Buffer.alloc(30_000, 7), offload: undefined };
    let received = 0;
    peer.on('data', (d: Buffer) => { received += d.length; });
    peer.pause();
    for (let i = 0; i < 400 && stats.txDropped === 0; i++) {
      writer.send(frame);
      await new Promise((r) => process.nextTick(r)); // the writer flushes each burst on the next tick
    }
    assert.ok(stats.txDropped > 0, 'frames are dropped while the backlog is over the mark');
    const sent = stats.txFrames;
    peer.resume();
    await waitFor(() => fwd.backlog(id) === 0, 'the forwarder wrote its backlog');
    writer.send(frame);
    assert.equal(stats.txFrames, sent + 1, 'the writer sends again');
    writer.stop();
    fwd.detach(id);
    await waitFor(() => received === (sent + 1) * (frame.data.length + 4), 'the peer got every frame that was not dropped');
  } finally {
    close();
    fwd.close();
  }
});

test('options out of range and a closed forwarder are NativeForwarderError', () => {
  assert.throws(() => NativeForwarder.open({ busyPollUs: -1 }), NativeForwarderError);
  assert.throws(() => NativeForwarder.open({ ttlMs: 1.5 }), NativeForwarderError);
  const fwd = NativeForwarder.open();
  fwd.close();
  assert.throws(() => fwd.attachLink(0, 65_563, 1 << 20, recorder().sink), (err: unknown) => err instanceof NativeForwarderError && err.code === 'VNET_ERR_NATIVE_FORWARDER');
});
