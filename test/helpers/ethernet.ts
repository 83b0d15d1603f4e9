import { writeMac, type Mac } from '../../src/common/mac.ts';

/** A test Ethernet frame: dst, src, EtherType 0x88b5 (local experimental), then a payload carrying `seq`. */
export function testFrame(dst: Mac, src: Mac, seq: number, size = 64): Buffer {
  const b = Buffer.alloc(Math.max(size, 22));
  writeMac(dst, b, 0);
  writeMac(src, b, 6);
  b.writeUInt16BE(0x88b5, 12);
  b.writeUInt32BE(seq >>> 0, 14);
  b.writeUInt32BE(size, 18);
  for (let i = 22; i < b.length; i++) b[i] = (seq + i) & 0xff;
  return b;
}

export function seqOf(frame: Buffer): number {
  return frame.readUInt32BE(14);
}
