/**
 * A configured VM whose disk is an image version (`ports[].guest.image`,
 * docs/daemon.md): once the controller has announced the version to this
 * site's propagator, the VM's model guest gets a disk of the image's size,
 * copy-on-write over it (image-disk.ts), and the VM is registered with the
 * migration agent. Nothing of the image needs to be here at start: the
 * VM's reads fetch what the site lacks from the nearest replica. The
 * chunks it reads first (its boot trace) go to the controller once recorded.
 * With `guest.image.nbd`, the disk is served over NBD on that Unix socket
 * (export: the port's name) for as long as the VM runs here.
 */
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { DaemonConfig } from '../dataplane/daemon-config.ts';
import type { Port } from '../dataplane/port.ts';
import type { Mac } from '../common/mac.ts';
import { validateManifest } from '../images/manifest.ts';
import type { Guest } from '../migration/guest.ts';
import type { ArrivedDiskImage } from './agent-context.ts';
import { ImageDiskError } from './errors.ts';
import { blocksOf, ImageDisk } from './image-disk.ts';
import type { ImagePropagator } from './image-propagator.ts';
import type { MigrationAgent } from './migration-agent.ts';
import { imageExport, NbdServer } from './nbd-server.ts';
import { createModelGuest, ModelGuestVm } from './vm-runtime.ts';

type GuestSpec = NonNullable<DaemonConfig['ports'][number]['guest']>;

export interface ImageVmComponents {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly migrations: MigrationAgent;
  readonly images: ImagePropagator;
  /** Whether the port is still configured (a reload may remove it while the VM waits for its image). */
  readonly portConfigured?: (() => boolean) | undefined;
}

/** The largest image a model guest's disk takes (it holds the disk in memory; the same bound as `guest.diskMiB`). */
export const MAX_IMAGE_DISK_BYTES = 4096 * 1024 * 1024;

/** Register the port's VM once its image version is known here; resolves to it (undefined: the daemon stopped first, or it failed — logged). */
export async function startImageVm(components: ImageVmComponents, port: Port, guest: GuestSpec & { image: NonNullable<GuestSpec['image']> }): Promise<ModelGuestVm | undefined> {
  const log = componentLogger(components.logger, 'image-vm', { port: port.name, image: guest.image.id });
  const { id, version, bootTrace } = guest.image;
  try {
    log.info({ version: version ?? 'latest' }, 'VM waiting for its disk image to be announced');
    const opened = await components.images.open(id, version, undefined, port.name);
    const { manifest } = opened;
    let nbd: NbdServer | undefined;
    try {
      if (components.portConfigured?.() === false) {
        log.info({}, 'the port was removed while its VM waited for its image');
        opened.close();
        return undefined;
      }
      if (manifest.size > MAX_IMAGE_DISK_BYTES) throw new ImageDiskError(id, manifest.version, `${manifest.size} bytes: a model guest's disk takes at most ${MAX_IMAGE_DISK_BYTES}`);
      const model = createModelGuest(port.name, { profile: guest.profile, memoryMiB: guest.memoryMiB, diskMiB: 0, diskBlocks: blocksOf(manifest) }, components.clock.now());
      const disk = new ImageDisk({ clock: components.clock }, {
        manifest, disk: model.disk!, fetcher: opened.fetcher, bootTrace,
        onBootTrace: (accessOrder) => {
          log.info({ version: manifest.version, chunks: accessOrder.length }, 'boot trace recorded; sent to the controller');
          components.images.reportBootTrace({ imageId: manifest.imageId, version: manifest.version, vm: port.name, accessOrder: [...accessOrder] });
        },
      });
      // Its disk over NBD, for QEMU or any NBD client (nbd-server.ts).
      nbd = guest.image.nbd === undefined ? undefined : await NbdServer.listen({ logger: components.logger }, { path: guest.image.nbd.socket, export: imageExport(port.name, disk) });
      // The boot's time is up: what it read so far is its trace.
      const bootOver = components.clock.setTimeout(() => disk.endBootTrace(), bootTrace.withinMs);
      const served = nbd;
      const close = (): void => { bootOver.cancel(); opened.close(); void served?.close(); };
      const vm = new ModelGuestVm({ clock: components.clock }, { name: port.name, mac: port.mac, port: port.name, guest: model, image: { disk, close } });
      components.migrations.addVm(vm);
      log.info({ version: manifest.version, size: manifest.size, chunks: manifest.chunks.length }, 'VM runs on its disk image (chunks read on demand)');
      return vm;
    } catch (err) {
      opened.close();
      await nbd?.close();
      throw err;
    }
  } catch (err) {
    const e = err as { code?: string; message?: string; name?: string };
    if (e.name === 'AbortError') return undefined;
    log.error({ code: e.code, detail: e.message }, 'the VM\'s disk could not be made from its image');
    return undefined;
  }
}

/**
 * A VM that arrived with its disk's description (the migration's disk-image
 * record): its runtime keeps the image version and which chunks are its own,
 * so its next move again sends only what that destination lacks. A
 * description that does not check out (a bad manifest, another disk size) is
 * logged and the VM runs without it (its next move sends its whole disk).
 */
export function arriveOnImage(components: Omit<ImageVmComponents, 'migrations'>, init: { name: string; mac: Mac; port: string; guest: Guest }, image: ArrivedDiskImage): ModelGuestVm {
  const log = componentLogger(components.logger, 'image-vm', { port: init.port });
  let opened: ReturnType<ImagePropagator['reader']> | undefined;
  try {
    const manifest = validateManifest(JSON.parse(image.manifest));
    if (init.guest.disk === undefined) throw new Error('the VM arrived without a disk');
    opened = components.images.reader(manifest, init.name);
    const disk = new ImageDisk({ clock: components.clock }, { manifest, disk: init.guest.disk, fetcher: opened.fetcher, arrived: { own: image.own } });
    log.info({ image: manifest.imageId, version: manifest.version, ownBlocks: disk.description.written.length }, 'VM arrived on its disk image');
    return new ModelGuestVm({ clock: components.clock }, { ...init, image: { disk, close: opened.close } });
  } catch (err) {
    opened?.close();
    const e = err as { code?: string; message?: string };
    log.warn({ code: e.code, detail: e.message }, 'the arriving VM\'s disk image description was refused: it runs without it');
    return new ModelGuestVm({ clock: components.clock }, init);
  }
}
