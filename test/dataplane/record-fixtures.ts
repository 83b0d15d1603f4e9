/** Record-layer fixtures shared by the record tests (record-rekey.test.ts, native-records*.test.ts). */
import { createCipheriv } from 'node:crypto';
import type { RecordDirection } from '../../src/dataplane/record-keys.ts';
import { KEY_UPDATE_PLAIN, RECORD_HEADER_BYTES, RECORD_TAG_BYTES } from '../../src/dataplane/record-layer.ts';
import type { LengthField } from '../fuzz/mutate.ts';

/** One record of `type` sealed straight from the format (not through RecordSealer, and without counting): type · u24 length · AES-256-GCM · tag. */
export function rawRecord(d: RecordDirection, type: number, plain: Buffer): Buffer {
  const header = Buffer.from([type, 0, 0, 0]);
  header.writeUIntBE(plain.length + RECORD_TAG_BYTES, 1, 3);
  const nonce = Buffer.from(d.iv);
  nonce.writeBigUInt64BE(nonce.readBigUInt64BE(4) ^ BigInt(d.seq), 4);
  const c = createCipheriv('aes-256-gcm', d.key, nonce).setAAD(header);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([header, body, c.getAuthTag()]);
}

/** A KEY_UPDATE's plaintext naming generation g. */
export function generationBytes(g: number): Buffer {
  const b = Buffer.alloc(KEY_UPDATE_PLAIN);
  b.writeBigUInt64BE(BigInt(g));
  return b;
}

/** The u24 length field of each record in a well-formed record stream (for mutateBytes' length hints). */
export function recordLengthFields(stream: Buffer, base = 0): LengthField[] {
  const out: LengthField[] = [];
  for (let at = 0; at + RECORD_HEADER_BYTES <= stream.length; at += RECORD_HEADER_BYTES + stream.readUIntBE(at + 1, 3)) out.push({ offset: base + at + 1, width: 3 });
  return out;
}
