import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors.ts';
import { checkVni, decodeVxlan, encodeVxlanHeader, VXLAN_HEADER_BYTES } from '../../src/dataplane/vxlan-codec.ts';

const frame = Buffer.from('ffffffffffff020000000001 0806'.replace(/ /g, '') + '00'.repeat(46), 'hex');

describe('VXLAN header (RFC 7348)', () => {
  it('encodes the I flag, zero reserved bits and the 24-bit VNI in network order', () => {
    assert.deepEqual([...encodeVxlanHeader(0x123456)], [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
    assert.deepEqual([...encodeVxlanHeader(0)], [0x08, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...encodeVxlanHeader(0xffffff)], [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
  });

  it('decodes what it encodes: the VNI and the inner frame', () => {
    const d = decodeVxlan(Buffer.concat([encodeVxlanHeader(4242), frame]));
    assert.equal(d.ok, true);
    if (!d.ok) return;
    assert.equal(d.vni, 4242);
    assert.deepEqual(d.frame, frame);
  });

  it('names what is wrong with a bad datagram instead of throwing', () => {
    const good = Buffer.concat([encodeVxlanHeader(7), frame]);
    assert.deepEqual(decodeVxlan(Buffer.alloc(0)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeVxlan(good.subarray(0, VXLAN_HEADER_BYTES + 13)), { ok: false, reason: 'short' });
    for (const flags of [0x00, 0x88, 0x0c, 0xff]) {
      const b = Buffer.from(good);
      b[0] = flags;
      assert.deepEqual(decodeVxlan(b), { ok: false, reason: 'flags' }, `flags 0x${flags.toString(16)}`);
    }
    for (const at of [1, 2, 3, 7]) {
      const b = Buffer.from(good);
      b[at] = 1;
      assert.deepEqual(decodeVxlan(b), { ok: false, reason: 'reserved' }, `reserved byte ${at}`);
    }
  });

  it('is total on random bytes', () => {
    let seed = 1;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let n = 0; n < 2000; n++) {
      const b = Buffer.alloc(n % 80);
      for (let i = 0; i < b.length; i++) b[i] = rnd();
      if (n % 3 === 0 && b.length > 0) b[0] = 0x08;
      const d = decodeVxlan(b);
      assert.ok(d.ok ? d.vni <= 0xffffff && d.frame.length >= 14 : ['short', 'flags', 'reserved'].includes(d.reason));
    }
  });

  it('refuses a VNI outside 0…2^24-1 with a ConfigError naming the key', () => {
    for (const bad of [-1, 0x1000000, 1.5, '5', undefined]) {
      assert.throws(() => checkVni(bad), (e: unknown) => e instanceof ConfigError && e.message.startsWith('vxlan.vni:'));
    }
    assert.equal(checkVni(16_777_215), 16_777_215);
  });
});
