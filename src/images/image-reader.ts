/**
 * A VM's view of an image at its site: reads by byte range; each chunk the
 * site lacks is fetched on demand from the nearest replica holding it
 * (chunk-fetcher.ts), verified, and kept locally for the next read.
 */
import type { ChunkFetcher, FetchRecord } from './chunk-fetcher.ts';
import type { ImageManifest } from './manifest.ts';

export class ImageReader {
  readonly manifest: ImageManifest;
  readonly #fetcher: ChunkFetcher;
  readonly #onFetch: ((r: FetchRecord) => void) | undefined;

  constructor(manifest: ImageManifest, fetcher: ChunkFetcher, onFetch?: (r: FetchRecord) => void) {
    this.manifest = manifest;
    this.#fetcher = fetcher;
    this.#onFetch = onFetch;
  }

  async readChunk(index: number, signal?: AbortSignal): Promise<Uint8Array> {
    const digest = this.manifest.chunks[index];
    if (digest === undefined) throw new RangeError(`image ${this.manifest.imageId} v${this.manifest.version} has no chunk ${index} (it has ${this.manifest.chunks.length})`);
    const { bytes, record } = await this.#fetcher.fetch(digest, signal);
    this.#onFetch?.(record);
    return bytes;
  }

  /** `length` bytes from `offset` (clipped to the image's end). */
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const { size, chunkSize } = this.manifest;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset > size) {
      throw new RangeError(`read of ${length} bytes at ${offset} is outside image ${this.manifest.imageId} (${size} bytes)`);
    }
    const end = Math.min(size, offset + length);
    const out = new Uint8Array(end - offset);
    for (let pos = offset; pos < end; ) {
      const index = Math.floor(pos / chunkSize);
      const chunk = await this.readChunk(index, signal);
      const from = pos - index * chunkSize;
      const n = Math.min(chunk.length - from, end - pos);
      out.set(chunk.subarray(from, from + n), pos - offset);
      pos += n;
    }
    return out;
  }
}
