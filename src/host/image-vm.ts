/**
 * A configured VM whose disk is an image version (`ports[].guest.image`,
 * docs/daemon.md): once the controller has announced the version to this
 * site's propagator, the VM's model guest gets a disk of the image's size,
 * copy-on-write over it (image-disk.ts), and the VM is registered with the
 * migration agent. Nothing of the image needs to be here at start: the
 * VM's reads fetch what the site lacks from the nearest replica. The
 * chunks it reads first (its boot trace) go to the controller once recorded.
 */
import type { Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import type { DaemonConfig } from '../dataplane/daemon-config.ts';
import type { Port } from '../dataplane/port.ts';
import { blocksOf, ImageDisk } from './image-disk.ts';
import type { ImagePropagator } from './image-propagator.ts';
import type { MigrationAgent } from './migration-agent.ts';
import { createModelGuest, ModelGuestVm } from './vm-runtime.ts';

type GuestSpec = NonNullable<DaemonConfig['ports'][number]['guest']>;

export interface ImageVmComponents {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly migrations: MigrationAgent;
  readonly images: ImagePropagator;
}

/** Register the port's VM once its image version is known here; resolves to it (undefined: the daemon stopped first, or it failed — logged). */
export async function startImageVm(components: ImageVmComponents, port: Port, guest: GuestSpec & { image: NonNullable<GuestSpec['image']> }): Promise<ModelGuestVm | undefined> {
  const log = componentLogger(components.logger, 'image-vm', { port: port.name, image: guest.image.id });
  const { id, version, bootTrace } = guest.image;
  try {
    log.info({ version: version ?? 'latest' }, 'VM waiting for its disk image to be announced');
    const opened = await components.images.open(id, version);
    const { manifest } = opened;
    try {
      const model = createModelGuest(port.name, { profile: guest.profile, memoryMiB: guest.memoryMiB, diskMiB: 0, diskBlocks: blocksOf(manifest) }, components.clock.now());
      const disk = new ImageDisk({ clock: components.clock }, {
        manifest, disk: model.disk!, fetcher: opened.fetcher, bootTrace,
        onBootTrace: (accessOrder) => {
          log.info({ version: manifest.version, chunks: accessOrder.length }, 'boot trace recorded; sent to the controller');
          components.images.reportBootTrace({ imageId: manifest.imageId, version: manifest.version, vm: port.name, accessOrder: [...accessOrder] });
        },
      });
      // The boot's time is up: what it read so far is its trace.
      const bootOver = components.clock.setTimeout(() => disk.endBootTrace(), bootTrace.withinMs);
      const close = (): void => { bootOver.cancel(); opened.close(); };
      const vm = new ModelGuestVm({ clock: components.clock }, { name: port.name, mac: port.mac, port: port.name, guest: model, image: { disk, close } });
      components.migrations.addVm(vm);
      log.info({ version: manifest.version, size: manifest.size, chunks: manifest.chunks.length }, 'VM runs on its disk image (chunks read on demand)');
      return vm;
    } catch (err) {
      opened.close();
      throw err;
    }
  } catch (err) {
    const e = err as { code?: string; message?: string; name?: string };
    if (e.name === 'AbortError') return undefined;
    log.error({ code: e.code, detail: e.message }, 'the VM\'s disk could not be made from its image');
    return undefined;
  }
}
