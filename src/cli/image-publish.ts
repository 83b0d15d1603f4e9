/**
 * `vnet ctl images publish FILE --id ID`: an image file cut into chunks and
 * published through the operator API (docs/images.md, "Publish"):
 *
 *   read      FILE chunk by chunk (never whole in memory), each digested
 *             (`<xxh64>-<sha256>`); the boot trace (--boot-trace) gives the
 *             order a boot reads them
 *   upload    every distinct chunk: PUT /api/v1/images/ID/chunks/DIGEST?site=S
 *             (the controller writes it to the site's chunk server over
 *             mutual TLS; the server verifies it)
 *   publish   POST /api/v1/images/ID/versions with the manifest: written
 *             only once the site holds every chunk
 *
 * A boot trace is text, one read a line: `OFFSET [LENGTH]` in bytes
 * (decimal; LENGTH defaults to 1), `#` starts a comment; the chunks the
 * reads touch, in the order first touched, are the version's accessOrder.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { createChunkHasher } from '../images/chunk-digest.ts';
import { CtlUsageError } from './errors.ts';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

/** The chunk indexes a boot trace touches, in first-touch order; a bad line is a CtlUsageError naming it. */
export function bootOrderFromTrace(text: string, file: string, imageSize: number, chunkSize: number): number[] {
  const order: number[] = [];
  const seen = new Set<number>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const m = /^(\d{1,16})(?:\s+(\d{1,16}))?$/.exec(line);
    const offset = m === null ? NaN : Number(m[1]);
    const length = m?.[2] === undefined ? 1 : Number(m[2]);
    if (m === null || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 1) {
      throw new CtlUsageError(`${file}:${i + 1}: expected "OFFSET [LENGTH]" in bytes, got ${JSON.stringify(raw.slice(0, 60))}`);
    }
    if (offset + length > imageSize) throw new CtlUsageError(`${file}:${i + 1}: a read of ${length} bytes at ${offset} is past the image's end (${imageSize} bytes)`);
    for (let c = Math.floor(offset / chunkSize); c <= Math.floor((offset + length - 1) / chunkSize); c++) {
      if (!seen.has(c)) {
        seen.add(c);
        order.push(c);
      }
    }
  });
  return order;
}

export interface PublishPlan {
  size: number;
  chunkSize: number;
  chunks: string[];
  accessOrder: number[];
}

/**
 * Digests FILE chunk by chunk, calling `upload` for each distinct chunk as
 * it is read (in image order); returns the manifest's fields.
 */
export async function chunkImageFile(
  file: string,
  opts: { chunkSize: number; bootTrace?: string | undefined },
  upload: (digest: string, bytes: Uint8Array) => Promise<void>,
): Promise<PublishPlan> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new CtlUsageError(`cannot publish ${file}: ${(err as Error).message}`);
  }
  if (size === 0) throw new CtlUsageError(`cannot publish ${file}: it is empty`);
  const { chunkSize } = opts;
  let accessOrder: number[] = [];
  if (opts.bootTrace !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.bootTrace, 'utf8');
    } catch (err) {
      throw new CtlUsageError(`cannot read the boot trace ${opts.bootTrace}: ${(err as Error).message}`);
    }
    accessOrder = bootOrderFromTrace(text, opts.bootTrace, size, chunkSize);
  }
  const hasher = await createChunkHasher();
  const chunks: string[] = [];
  const sent = new Set<string>();
  const fh = await open(file, 'r');
  try {
    const buf = new Uint8Array(chunkSize);
    for (let off = 0; off < size; off += chunkSize) {
      const want = Math.min(chunkSize, size - off);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, off + got);
        if (bytesRead === 0) throw new CtlUsageError(`${file} shrank while it was read (at ${off + got} of ${size} bytes)`);
        got += bytesRead;
      }
      const bytes = buf.subarray(0, want);
      const digest = hasher.digest(bytes);
      chunks.push(digest);
      if (!sent.has(digest)) {
        sent.add(digest);
        await upload(digest, bytes);
      }
    }
  } finally {
    await fh.close();
  }
  return { size, chunkSize, chunks, accessOrder };
}
