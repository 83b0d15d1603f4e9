import type { Command } from 'commander';
import type { ImageView } from '../controller/image-catalog.ts';
import { formatAge, formatBytes, progressBar, table } from './ctl-format.ts';
import type { CtlActions } from './ctl-io.ts';

/**
 * `vnet ctl images [ID]`: the published images (docs/images.md), each
 * version with its size, chunks and origin, and per site how many of its
 * chunks are there (propagation progress).
 */

const enc = encodeURIComponent;

export function imagesTable(images: readonly ImageView[], now: number): string {
  if (images.length === 0) return '(no images published)';
  const rows: string[][] = [];
  for (const image of images) {
    for (const v of image.versions) {
      const sites = v.replicas.length === 0 ? [undefined] : v.replicas;
      for (const [i, r] of sites.entries()) {
        rows.push([
          i === 0 ? image.imageId : '',
          i === 0 ? `${v.version}${v.version === image.latest ? ' (latest)' : ''}` : '',
          i === 0 ? formatBytes(v.size) : '',
          i === 0 ? `${v.chunks} × ${formatBytes(v.chunkSize)}, ${v.bootChunks} boot` : '',
          i === 0 ? `${v.originSite} ${formatAge(v.publishedAt, now)}` : '',
          r === undefined ? '-' : r.site,
          r === undefined ? '-' : `${progressBar(r.total === 0 ? 1 : r.held / r.total, 10)} ${r.held}/${r.total}${r.complete ? ' complete' : ''}`,
        ]);
      }
    }
  }
  return table(['IMAGE', 'VERSION', 'SIZE', 'CHUNKS', 'PUBLISHED', 'SITE', 'REPLICATED'], rows);
}

export function addImageCommands(ctl: Command, { io, run, print }: CtlActions): void {
  ctl
    .command('images')
    .argument('[id]', 'one image only')
    .description('published VM images: versions, where each is replicated and how far propagation has got')
    .action(
      run(async (c, g, id: string | undefined) => {
        const images = id === undefined
          ? (await c.get<{ images: ImageView[] }>('/api/v1/images')).images
          : [await c.get<ImageView>(`/api/v1/images/${enc(id)}`)];
        print(g, id === undefined ? { images } : images[0], () => imagesTable(images, io.now()));
      }),
    );
}
