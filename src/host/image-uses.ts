/**
 * The VMs at this daemon whose disk is an image version (image-vm.ts opens
 * it through the propagator with the VM's name): configured and waiting for
 * their version, or running on it. A controller that speaks image-keep is
 * told (`image-uses`, one report after a burst of changes), so a version in
 * use is not deleted; and the chunks of a version a VM runs on stay live
 * for collection until the VM closes it, whatever the holds say.
 */
import type { Clock, TimerHandle } from '../common/clock.ts';
import type { ImageUsesReport } from '../control/image-control.ts';
import type { ImageManifest } from '../images/manifest.ts';

/** Holds arrive in a burst at a welcome: one report after it. */
const REPORT_DELAY_MS = 50;

/** A VM's use: the version it asked for (absent: the latest) and, once opened, its manifest. */
export interface ImageUse {
  readonly imageId: string;
  version: number | undefined;
  manifest: ImageManifest | undefined;
}

export interface ImageUsesComponents {
  clock: Clock;
  emit: (report: ImageUsesReport) => void;
  /** Whether the controller wants reports (it sent a keep). */
  reportable: () => boolean;
  /** A use ended (what collection keeps may have shrunk). */
  ended: () => void;
}

export class ImageUses {
  readonly #c: ImageUsesComponents;
  readonly #uses = new Map<string, ImageUse>();
  #report: TimerHandle | undefined;
  #closed = false;

  constructor(components: ImageUsesComponents) {
    this.#c = components;
  }

  /** A VM begins to use a version (`vm` undefined: not a VM, not tracked). */
  begin(vm: string | undefined, imageId: string, version: number | undefined, manifest?: ImageManifest): ImageUse {
    const use: ImageUse = { imageId, version, manifest };
    if (vm === undefined) return use;
    this.#uses.set(vm, use);
    this.scheduleReport();
    return use;
  }

  /** The version the VM waited for is open. */
  opened(use: ImageUse, manifest: ImageManifest): void {
    use.version = manifest.version;
    use.manifest = manifest;
    this.scheduleReport();
  }

  end(vm: string | undefined, use: ImageUse): void {
    if (vm === undefined || this.#uses.get(vm) !== use) return;
    this.#uses.delete(vm);
    this.scheduleReport();
    this.#c.ended();
  }

  list(): ImageUsesReport['vms'] {
    return [...this.#uses].map(([vm, u]) => ({ vm, imageId: u.imageId, ...(u.version !== undefined ? { version: u.version } : {}) })).sort((a, b) => (a.vm < b.vm ? -1 : 1));
  }

  /** Adds the chunks of every version a VM here has open. */
  addChunks(into: Set<string>): void {
    for (const u of this.#uses.values()) for (const d of u.manifest?.chunks ?? []) into.add(d);
  }

  /** One report soon, to a controller that wants them. */
  scheduleReport(): void {
    if (this.#closed || this.#report !== undefined || !this.#c.reportable()) return;
    this.#report = this.#c.clock.setTimeout(() => {
      this.#report = undefined;
      this.#c.emit({ type: 'image-uses', vms: this.list() });
    }, REPORT_DELAY_MS);
  }

  close(): void {
    this.#closed = true;
    this.#report?.cancel();
  }
}
