import type { Command } from 'commander';
import type { ImageView } from '../controller/image-catalog.ts';
import { formatAge, formatBytes, progressBar, table } from './ctl-format.ts';
import type { CtlActions } from './ctl-io.ts';
import type { ControllerClient } from './ctl-client.ts';
import { ControllerRequestError, CtlUsageError } from './errors.ts';
import { chunkImageFile, DEFAULT_CHUNK_SIZE } from './image-publish.ts';

/**
 * `vnet ctl images [ID]`: the published images (docs/images.md), each
 * version with its size, chunks and origin, and per site how many of its
 * chunks are there (propagation progress), and why a site's propagation
 * stalls (no replica has a chunk, the store's capacity cannot fit it); for an
 * image with deleted versions, which, and the next version number (a number
 * is never reused: docs/images.md, "Version numbers").
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
          r === undefined ? '-' : `${progressBar(r.total === 0 ? 1 : r.held / r.total, 10)} ${r.held}/${r.total}${r.complete ? ' complete' : ''}${r.stalled !== undefined ? ` stalled: ${r.stalled.message}` : ''}`,
        ]);
      }
    }
  }
  const deleted = images.filter((i) => i.deleted.length > 0).map((i) => {
    const numbers = i.deleted.map((d) => d.version);
    const what = i.versions.length === 0 ? `every version deleted (${numbers.join(', ')})` : `version${numbers.length === 1 ? '' : 's'} ${numbers.join(', ')} deleted`;
    return `${i.imageId}: ${what}; the next version is ${i.nextVersion} (numbers are never reused)`;
  });
  return [...(rows.length > 0 ? [table(['IMAGE', 'VERSION', 'SIZE', 'CHUNKS', 'PUBLISHED', 'SITE', 'REPLICATED'], rows)] : []), ...deleted].join('\n');
}

export function addImageCommands(ctl: Command, { io, run, print }: CtlActions): void {
  const images = ctl
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
  images
    .command('publish')
    .argument('<file>', 'the image file (raw disk bytes)')
    .requiredOption('--id <id>', 'the image id (lower-case letters, digits, ".", "_", "-")')
    .option('--version <n>', 'the version to publish (default: the image\'s next version, above every number it ever had: a deleted number is never reused)')
    .option('--site <site>', 'the origin site, whose chunk server receives the chunks (default: the hub\'s site)')
    .option('--boot-trace <file>', 'reads a recorded boot made, one "OFFSET [LENGTH]" a line: those chunks propagate first')
    .option('--chunk-size <bytes>', `chunk size in bytes (default ${DEFAULT_CHUNK_SIZE})`)
    .description('publish a VM image version: chunks to the origin site\'s store, then the manifest (operator token)')
    .action(
      run(async (c, g, file: string, o: { id: string; version?: string; site?: string; bootTrace?: string; chunkSize?: string }) => {
        const version = o.version === undefined ? await nextVersion(c, o.id) : positive('--version', o.version);
        const chunkSize = o.chunkSize === undefined ? DEFAULT_CHUNK_SIZE : positive('--chunk-size', o.chunkSize);
        const site = o.site === undefined ? '' : `?site=${enc(o.site)}`;
        let uploaded = 0;
        const plan = await chunkImageFile(file, { chunkSize, bootTrace: o.bootTrace }, async (digest, bytes) => {
          await c.putBytes(`/api/v1/images/${enc(o.id)}/chunks/${enc(digest)}${site}`, bytes);
          uploaded++;
        });
        const published = await c.post<{ imageId: string; version: number; originSite: string; chunks: number; bootChunks: number }>(
          `/api/v1/images/${enc(o.id)}/versions`,
          { version, ...plan, ...(o.site !== undefined ? { site: o.site } : {}) },
          300_000, // the controller checks every chunk at the origin first
        );
        print(g, published, () => `published ${published.imageId} version ${published.version} at ${published.originSite}: ${formatBytes(plan.size)} in ${plan.chunks.length} chunks (${uploaded} distinct uploaded), ${plan.accessOrder.length} read first at boot; the other sites propagate it now`);
      }),
    );
  images
    .command('delete')
    .argument('<id>', 'the image')
    .option('--version <n>', 'this version only (default: every version of the image)')
    .description('delete an image version, or the whole image: refused while a VM is configured or running on it; every site then collects the chunks no version left needs (operator token)')
    .action(
      run(async (c, g, id: string, o: { version?: string }) => {
        const path = o.version === undefined ? `/api/v1/images/${enc(id)}` : `/api/v1/images/${enc(id)}/versions/${positive('--version', o.version)}`;
        const done = await c.delete<{ imageId: string; deleted: number[] }>(path);
        print(g, done, () => `deleted ${done.imageId} version${done.deleted.length === 1 ? '' : 's'} ${done.deleted.join(', ')}; the sites collect the chunks no version left needs`);
      }),
    );
  images
    .command('boot-trace')
    .argument('<id>', 'the image')
    .requiredOption('--from-vm <vm>', 'the VM (on a disk from the image\'s latest version) whose recorded boot becomes the image\'s boot order')
    .description('publish the chunks a VM read first at boot as the image\'s boot order (a new version, same chunks): sites prefetch those first (operator token)')
    .action(
      run(async (c, g, id: string, o: { fromVm: string }) => {
        const published = await c.post<{ imageId: string; version: number; bootChunks: number }>(`/api/v1/images/${enc(id)}/boot-trace`, { fromVm: o.fromVm });
        print(g, published, () => `${published.imageId} version ${published.version}: ${published.bootChunks} chunks read first at boot (recorded by ${o.fromVm}); the sites prefetch them first`);
      }),
    );
}

/** The image's next never-used version number (1 for an image never published). */
async function nextVersion(c: ControllerClient, id: string): Promise<number> {
  try {
    return (await c.get<ImageView>(`/api/v1/images/${enc(id)}`)).nextVersion;
  } catch (err) {
    if (err instanceof ControllerRequestError && err.status === 404) return 1;
    throw err;
  }
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new CtlUsageError(`${flag}: expected a positive integer, got ${JSON.stringify(v)}`);
  return n;
}
