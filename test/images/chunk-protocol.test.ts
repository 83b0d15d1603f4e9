import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkStatus, encodeRequest, encodeResponse, RequestDecoder, ResponseDecoder, MAX_REQUEST_LINE } from '../../src/images/chunk-protocol.ts';
import { ChunkProtocolError } from '../../src/images/errors.ts';

const D = 'ab'.repeat(8) + '-' + 'cd'.repeat(32);

test('requests decode at every split of the stream', () => {
  const wire = Buffer.concat([encodeRequest({ op: 'HAS', digest: D }), encodeRequest({ op: 'GET', digest: D })]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new RequestDecoder();
    const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
    assert.deepEqual(got, [{ op: 'HAS', digest: D }, { op: 'GET', digest: D }], `cut at ${cut}`);
  }
});

test('a bad request line is a typed error, and the decoder stops there', () => {
  for (const line of ['PUT ' + D + '\n', 'GET ../etc\n', 'GET ' + D + ' x\n', 'GET \x01\n', 'G'.repeat(MAX_REQUEST_LINE + 1)]) {
    const d = new RequestDecoder();
    const out = d.push(Buffer.from(line, 'latin1'));
    assert.equal(out.length, 1, JSON.stringify(line));
    assert.ok(out[0] instanceof ChunkProtocolError && out[0].code === 'VNET_ERR_IMAGE_PROTOCOL_REQUEST');
    assert.deepEqual(d.push(encodeRequest({ op: 'GET', digest: D })), []);
  }
});

test('responses decode at every split, byte by byte included', () => {
  const body = new Uint8Array(300).map((_, i) => i & 0xff);
  const wire = Buffer.concat([
    encodeResponse({ status: ChunkStatus.Held }),
    encodeResponse({ status: ChunkStatus.Ok, bytes: body }),
    encodeResponse({ status: ChunkStatus.Absent }),
    encodeResponse({ status: ChunkStatus.Ok, bytes: new Uint8Array(0) }),
  ]);
  const expected = [{ status: ChunkStatus.Held }, { status: ChunkStatus.Ok, bytes: body }, { status: ChunkStatus.Absent }, { status: ChunkStatus.Ok, bytes: new Uint8Array(0) }];
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new ResponseDecoder({ maxChunkBytes: 1000 });
    assert.deepEqual([...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))], expected, `cut at ${cut}`);
  }
  const d = new ResponseDecoder({ maxChunkBytes: 1000 });
  const got = [...wire].flatMap((b) => d.push(Uint8Array.of(b)));
  assert.deepEqual(got, expected);
});

test('an oversized chunk, an unknown status or a body on a status without one is refused before buffering', () => {
  const cases: [Uint8Array, string][] = [
    [Uint8Array.of(0, 0, 0, 4, 1), 'VNET_ERR_IMAGE_PROTOCOL_LENGTH'],
    [Uint8Array.of(9, 0, 0, 0, 0), 'VNET_ERR_IMAGE_PROTOCOL_STATUS'],
    [Uint8Array.of(1, 0, 0, 0, 3), 'VNET_ERR_IMAGE_PROTOCOL_LENGTH'],
  ];
  for (const [wire, code] of cases) {
    const out = new ResponseDecoder({ maxChunkBytes: 1024 }).push(wire);
    assert.equal(out.length, 1);
    assert.ok(out[0] instanceof ChunkProtocolError && out[0].code === code, code);
  }
});

test('random bytes never throw out of either decoder', () => {
  let seed = 42;
  const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  for (let n = 0; n < 2000; n++) {
    const bytes = Uint8Array.from({ length: 1 + (rnd() % 64) }, rnd);
    new RequestDecoder().push(bytes);
    new ResponseDecoder({ maxChunkBytes: 4096 }).push(bytes);
  }
});

test('a PUT decodes with its body at every split; over the limit, without a length, or on a read-only decoder it is refused', () => {
  const body = new Uint8Array(700).map((_, i) => (i * 3) & 0xff);
  const wire = Buffer.concat([encodeRequest({ op: 'PUT', digest: D, bytes: body }), encodeRequest({ op: 'HAS', digest: D })]);
  const expected = [{ op: 'PUT', digest: D, bytes: body }, { op: 'HAS', digest: D }];
  for (let cut = 0; cut <= wire.length; cut += 7) {
    const d = new RequestDecoder({ maxPutBytes: 1024 });
    assert.deepEqual([...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))], expected, `cut at ${cut}`);
  }
  const byteByByte = new RequestDecoder({ maxPutBytes: 1024 });
  assert.deepEqual([...wire].flatMap((b) => byteByByte.push(Uint8Array.of(b))), expected);
  for (const [decoder, line] of [
    [new RequestDecoder({ maxPutBytes: 100 }), `PUT ${D} 101\n`],
    [new RequestDecoder(), `PUT ${D} 1\n`],
    [new RequestDecoder({ maxPutBytes: 100 }), `PUT ${D}\n`],
    [new RequestDecoder({ maxPutBytes: 100 }), `GET ${D} 5\n`],
  ] as const) {
    const out = decoder.push(Buffer.from(line));
    assert.equal(out.length, 1, line);
    assert.ok(out[0] instanceof ChunkProtocolError && out[0].code === 'VNET_ERR_IMAGE_PROTOCOL_REQUEST', line);
  }
});

test('the PUT answers decode', () => {
  const wire = Buffer.concat([ChunkStatus.Stored, ChunkStatus.Forbidden, ChunkStatus.Mismatch].map((status) => encodeResponse({ status })));
  assert.deepEqual(new ResponseDecoder({ maxChunkBytes: 10 }).push(wire), [{ status: ChunkStatus.Stored }, { status: ChunkStatus.Forbidden }, { status: ChunkStatus.Mismatch }]);
});
