import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FRAME_BYTES, MIN_FRAME_BYTES, VIRTIO_NET_HDR_BYTES } from '../../src/common/frame.ts';
import { HOST_ID_PATTERN } from '../../src/common/host-id.ts';
import { FrameDecodeError } from '../../src/dataplane/errors.ts';
import { FrameDecoder, encodeFrame, type DecoderSink } from '../../src/dataplane/frame-codec.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  AUTH_METHODS,
  HEADER_BYTES,
  MAX_AUTH_BYTES,
  MAX_GOODBYE_REASON_BYTES,
  MAX_HELLO_BYTES,
  GOODBYE_CODES,
  encodeAuth,
  encodeGoodbye,
  encodeHello,
  encodeKeepalive,
  type ControlMessage,
} from '../../src/dataplane/wire-messages.ts';
import type { Frame } from '../../src/common/frame.ts';
import { OffloadError } from '../../src/dataplane/errors.ts';
import { MAX_GSO_SEGMENTS, segmentFrame } from '../../src/dataplane/offload.ts';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  encodeVirtioNetHdr,
} from '../../src/dataplane/virtio-net-hdr.ts';
import { fuzz, showBytes, typedOutcome, type Rand } from './fuzz-kit.ts';
import { mutateBytes, randomChunks, type LengthField } from './mutate.ts';

/**
 * The tunnel wire decoder (src/dataplane/frame-codec.ts) under random and
 * mutated byte streams in random chunkings. Oracle: push never throws; the
 * only error is a FrameDecodeError, delivered once, last; the decoder never
 * holds more than one message of its limit; every frame it hands out is
 * within the frame limits; every hello names a valid host id; and the events
 * do not depend on the chunking (the stream decoded whole gives the same).
 */

interface Input {
  readonly bytes: Buffer;
  readonly chunks: Buffer[];
  readonly maxMessageBytes: number;
}

class Recorder implements DecoderSink {
  readonly events: string[] = [];
  errors = 0;
  lastError: FrameDecodeError | undefined;
  constructor(readonly maxMessageBytes: number) {}
  onFrames(frames: Frame[]): void {
    for (const f of frames) {
      assert.ok(f.data.length >= MIN_FRAME_BYTES && f.data.length <= MAX_FRAME_BYTES, `frame of ${f.data.length} bytes`);
      assert.ok(f.data.length + (f.offload?.length ?? 0) <= this.maxMessageBytes, 'frame over the limit');
      this.events.push(`f${f.offload === undefined ? '' : `o${f.offload.toString('hex')}`}:${f.data.toString('hex')}`);
    }
  }
  onControl(m: ControlMessage): void {
    if (m.type === 'hello') assert.match(m.hostId, HOST_ID_PATTERN);
    this.events.push(`c:${JSON.stringify(m)}`);
  }
  onDecodeError(err: FrameDecodeError): void {
    this.errors++;
    this.lastError = err;
    this.events.push(`e:${err.code}`);
  }
}

function ethernet(rand: Rand, length: number): Buffer {
  return rand.bytes(length);
}

/** A valid stream of a few messages, and where its length fields are. */
function validStream(rand: Rand): { bytes: Buffer; lengths: LengthField[] } {
  const parts: Buffer[] = [];
  const lengths: LengthField[] = [];
  let off = 0;
  const add = (p: Buffer, fields: readonly LengthField[] = []): void => {
    lengths.push({ offset: off + 1, width: 3 }, ...fields.map((f) => ({ offset: off + f.offset, width: f.width })));
    parts.push(p);
    off += p.length;
  };
  if (rand.chance(0.7)) {
    const hostId = rand.pick(['hub', 'host-a', 'c4', 'x'.repeat(63)]);
    const hello = encodeHello({ kind: rand.pick(['backbone', 'fast-path'] as const), role: rand.pick(['dialer', 'listener'] as const), hostId, auth: rand.pick(AUTH_METHODS) });
    add(hello, [{ offset: hello.length - hostId.length - 1, width: 1 }]); // the host id's length byte
  }
  // The handshake's auth message: certificate length, certificate, proof.
  if (rand.chance(0.4)) add(encodeAuth({ certificate: rand.bytes(rand.size(1500)), proof: rand.bytes(rand.range(1, 72)) }), [{ offset: HEADER_BYTES, width: 2 }]);
  for (let k = rand.range(0, 6); k > 0; k--) {
    const kind = rand.int(10);
    if (kind < 5) add(encodeFrame({ data: ethernet(rand, rand.range(MIN_FRAME_BYTES, rand.chance(0.05) ? 9000 : 1514)), offload: undefined }));
    else if (kind < 7) add(encodeFrame({ data: ethernet(rand, rand.range(MIN_FRAME_BYTES, 1514)), offload: rand.bytes(10) }));
    else if (kind < 9) add(encodeKeepalive());
    else add(encodeGoodbye(rand.pick(GOODBYE_CODES), rand.bytes(rand.size(40)).toString('latin1')));
  }
  return { bytes: Buffer.concat(parts), lengths };
}

function decode(chunks: readonly Buffer[], maxMessageBytes: number): Recorder {
  const rec = new Recorder(maxMessageBytes);
  const dec = new FrameDecoder(rec, { maxMessageBytes });
  for (const c of chunks) {
    const more = dec.push(c);
    // A frame is bounded by maxMessageBytes, a hello, an auth and a goodbye by their own limits.
    const bound = HEADER_BYTES + Math.max(dec.maxMessageBytes, MAX_HELLO_BYTES, 1 + MAX_GOODBYE_REASON_BYTES, MAX_AUTH_BYTES);
    assert.ok(dec.bufferedBytes <= bound, `holds ${dec.bufferedBytes} bytes`);
    assert.equal(more, rec.errors === 0, 'push returns false exactly once the decoder has failed');
  }
  assert.ok(rec.errors <= 1, 'at most one error');
  if (rec.lastError !== undefined) {
    assert.ok(rec.lastError instanceof FrameDecodeError, `a FrameDecodeError, not ${rec.lastError}`);
    assert.match(rec.lastError.code, /^VNET_ERR_[A-Z_]+$/);
    assert.equal(rec.events.at(-1), `e:${rec.lastError.code}`, 'the error is the last event');
    assert.equal(dec.error, rec.lastError);
  }
  return rec;
}

test('fuzz: tunnel wire decoder (frame-codec) — random and mutated streams in random chunkings', async (t) => {
  await fuzz<Input>(t, {
    name: 'tunnel-frame-codec',
    generate(rand) {
      const maxMessageBytes = rand.chance(0.8) ? DEFAULT_MAX_MESSAGE_BYTES : rand.pick([0, 14, 64, 1518, 9000]);
      let bytes: Buffer;
      const mode = rand.int(10);
      if (mode === 0) bytes = rand.bytes(rand.size(4096));
      else if (mode === 1) {
        // Headers only: every type byte, lengths at the edges.
        bytes = Buffer.concat(Array.from({ length: rand.range(1, 8) }, () => Buffer.from([rand.int(8), rand.int(256), rand.int(256), rand.int(256)])));
      } else {
        const a = validStream(rand);
        const corpus = [validStream(rand).bytes];
        bytes = mode === 2 ? a.bytes : mutateBytes(rand, a.bytes, { corpus, lengths: a.lengths });
      }
      return { bytes, chunks: randomChunks(rand, bytes), maxMessageBytes };
    },
    run({ bytes, chunks, maxMessageBytes }) {
      const rec = decode(chunks, maxMessageBytes);
      assert.deepEqual(rec.events, decode([bytes], maxMessageBytes).events, 'events independent of the chunking');
      return rec.lastError?.code ?? (rec.events.length === 0 ? 'ok-empty' : 'ok');
    },
    show: (i) => `${showBytes(i.bytes)} in ${i.chunks.length} chunks, maxMessageBytes ${i.maxMessageBytes}`,
  });
});

// ---------------------------------------------------------------- software offload

/** A frame as a peer could send it in an offload message: Ethernet (maybe a VLAN tag), IPv4 or IPv6, TCP or UDP, and its virtio_net_hdr. */
function offloadFrame(rand: Rand): Frame {
  const v6 = rand.chance(0.4);
  const udp = rand.chance(0.3);
  const vlan = rand.chance(0.2);
  const payload = rand.bytes(rand.size(rand.chance(0.3) ? 65_000 : 4000));
  const eth = Buffer.alloc(vlan ? 18 : 14);
  rand.bytes(12).copy(eth);
  if (vlan) eth.writeUInt32BE((0x81000000 | rand.int(4096)) >>> 0, 12);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, eth.length - 2);
  const l4 = Buffer.alloc(udp ? 8 : 20 + 4 * rand.int(4));
  if (!udp) {
    l4[12] = (l4.length / 4) << 4;
    l4[13] = rand.int(256);
  } else l4.writeUInt16BE((l4.length + payload.length) & 0xffff, 4);
  const ip = Buffer.alloc(v6 ? 40 : 20);
  if (v6) {
    ip[0] = 0x60;
    ip.writeUInt16BE((l4.length + payload.length) & 0xffff, 4);
    ip[6] = udp ? 17 : 6;
  } else {
    ip[0] = 0x45;
    ip.writeUInt16BE((20 + l4.length + payload.length) & 0xffff, 2);
    ip[9] = udp ? 17 : 6;
  }
  const data = Buffer.concat([eth, ip, l4, payload]);
  const csumStart = eth.length + ip.length;
  const gsoType = rand.chance(0.2) ? VIRTIO_NET_HDR_GSO_NONE : udp ? VIRTIO_NET_HDR_GSO_UDP_L4 : v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  const offload = encodeVirtioNetHdr({
    flags: rand.chance(0.9) ? VIRTIO_NET_HDR_F_NEEDS_CSUM : rand.int(256),
    gsoType,
    hdrLen: csumStart + l4.length,
    gsoSize: rand.pick([1, 7, 8, 100, 536, 1448, 1460, 8948, 65535]),
    csumStart,
    csumOffset: udp ? 6 : 16,
  });
  return { data, offload };
}

interface OffloadInput {
  readonly frame: Frame;
}

test('fuzz: software offload of tunnel offload frames (virtio_net_hdr applied by the daemon)', async (t) => {
  await fuzz<OffloadInput>(t, {
    name: 'tunnel-software-offload',
    generate(rand) {
      const f = offloadFrame(rand);
      const mode = rand.int(4);
      // The header's fields (gso size, header length, checksum start and offset), the IP and L4 lengths, or any byte.
      const offload = mode === 0 ? f.offload! : mutateBytes(rand, f.offload!, { lengths: [2, 4, 6, 8].map((offset) => ({ offset, width: 2 }) as const), max: 2 }).subarray(0, VIRTIO_NET_HDR_BYTES);
      const data = mode === 1 ? mutateBytes(rand, f.data, { lengths: [{ offset: 16, width: 2 }, { offset: 18, width: 2 }, { offset: 20, width: 2 }, { offset: 46, width: 1 }, { offset: 58, width: 1 }], max: 3 }) : f.data;
      const padded = offload.length < VIRTIO_NET_HDR_BYTES ? Buffer.concat([offload, Buffer.alloc(VIRTIO_NET_HDR_BYTES - offload.length)]) : offload;
      // Within what the tunnel decoder lets through: MIN_FRAME_BYTES..MAX_FRAME_BYTES.
      const sized = data.length >= MIN_FRAME_BYTES ? data.subarray(0, MAX_FRAME_BYTES) : Buffer.concat([data, Buffer.alloc(MIN_FRAME_BYTES - data.length)]);
      return { frame: { data: sized, offload: padded } };
    },
    run({ frame }) {
      let out: Frame[];
      try {
        out = segmentFrame(frame);
      } catch (err) {
        return typedOutcome(err, (e) => e instanceof OffloadError);
      }
      assert.ok(out.length >= 1 && out.length <= MAX_GSO_SEGMENTS, `${out.length} segments`);
      for (const f of out) {
        assert.equal(f.offload, undefined, 'plain frames out');
        assert.ok(f.data.length >= MIN_FRAME_BYTES && f.data.length <= frame.data.length, `a segment of ${f.data.length} bytes from a ${frame.data.length}-byte frame`);
      }
      return out.length === 1 ? 'ok:1' : 'ok:segmented';
    },
    show: (i) => `offload ${i.frame.offload!.toString('hex')} data ${showBytes(i.frame.data, 128)}`,
  });
});
