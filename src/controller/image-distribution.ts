/**
 * Which image versions each site's daemon is asked to hold, and where it
 * fetches them from (docs/images.md, "Propagation"; the messages:
 * src/control/image-control.ts).
 *
 *   the deployment    names each site's chunk server (`hosts[].images`:
 *                     the host, its address; port 0 — the port the daemon
 *                     announces in its hello)
 *   daemon hello      with `images`: this host keeps its site's store →
 *                     image-hold for the latest version of every image
 *                     (a server whose port was unknown until now: the holds
 *                     go again to every connected server, with it a replica)
 *   publish           image-hold of the new version to every connected server
 *   (feature image-keep) the hello's holds are every version — the latest
 *                     to propagate, older ones `retain` — each with `keep`
 *                     (the catalogue's every version); a deletion sends
 *                     `release` holds of the deleted versions and the new
 *                     latest's hold, so a site forgets what was deleted and
 *                     collects its chunks (docs/images.md, "Deleting")
 *   image-uses        the VMs a host runs on image versions (usersOf: a
 *                     version in use is not deleted)
 *   image-progress    ImageCatalog.recordProgress for the host's site
 *   image-boot-trace  kept per VM (bootTraceOf) until published as a version's accessOrder
 *
 * The replicas of a hold are every other site's server, with the
 * deployment's round-trip time from the daemon's site; the daemon asks them
 * nearest first and passes over one that lacks a chunk, so no progress needs
 * to be known here. Decisions return the messages to send (the loop's
 * applier sends them); only `progress` writes (through the catalog).
 */
import type { Logger } from '../common/logger.ts';
import type { ControllerMessage } from '../control/control-protocol.ts';
import { MAX_KEEP_VERSIONS, type ImageAnnounce, type ImageBootTraceReport, type ImageHold, type ImageHoldReplica, type ImageProgressReport, type ImageUsesReport } from '../control/image-control.ts';
import type { ImageManifest } from '../images/manifest.ts';
import { siteRttMs, type Deployment } from './deployment-file.ts';
import type { OutgoingMessage } from './effects.ts';
import type { ImageCatalog } from './image-catalog.ts';
import { ImageSiteError } from './errors.ts';

/** A site's chunk server as the deployment names it. */
export interface SiteImageServer {
  readonly site: string;
  readonly host: string;
  readonly address: { readonly host: string; readonly port: number };
}

/** The deployment's chunk servers, by host id. */
export function siteImageServers(d: Readonly<Deployment>): Map<string, SiteImageServer> {
  const out = new Map<string, SiteImageServer>();
  for (const h of d.hosts) if (h.images !== undefined) out.set(h.id, { site: h.site, host: h.id, address: { host: h.images.host, port: h.images.port } });
  return out;
}

/** A VM's boot trace as its daemon reported it. */
export interface RecordedBootTrace {
  readonly host: string;
  readonly imageId: string;
  readonly version: number;
  readonly accessOrder: readonly number[];
}

export class ImageDistribution {
  readonly #traces = new Map<string, RecordedBootTrace>();
  readonly #catalog: ImageCatalog;
  readonly #log: Logger;
  readonly #servers: Map<string, SiteImageServer>;
  readonly #rtt: (a: string, b: string) => number;
  /** Connected servers and the port each announced. */
  readonly #connected = new Map<string, number>();
  /** Connected servers that speak feature image-keep (holds with `keep`, `mode`). */
  readonly #keeping = new Set<string>();
  /** The VMs each host last said run on image versions (kept while it is away: its VMs may still run). */
  readonly #uses = new Map<string, ImageUsesReport['vms']>();

  constructor(c: { catalog: ImageCatalog; deployment: Readonly<Deployment>; logger: Logger }) {
    this.#catalog = c.catalog;
    this.#log = c.logger;
    this.#servers = siteImageServers(c.deployment);
    this.#rtt = (a, b) => siteRttMs(c.deployment, a, b) ?? 100_000;
  }

  /** A daemon said hello (`keep`: it speaks feature image-keep); the holds to send. */
  sessionOpened(host: string, announced: ImageAnnounce | undefined, keep = false): OutgoingMessage[] {
    const server = this.#servers.get(host);
    if (server === undefined) {
      if (announced !== undefined) this.#log.warn({ host }, 'a daemon keeps a chunk store the deployment does not name (hosts[].images): it is sent no images');
      return [];
    }
    if (announced === undefined) {
      this.#connected.delete(host);
      this.#log.warn({ host, site: server.site }, 'the deployment names this host its site\'s chunk server, but its daemon keeps no image store (config images: {dir, host, port})');
      return [];
    }
    const before = this.#connected.get(host);
    this.#connected.set(host, announced.port);
    if (keep) this.#keeping.add(host);
    else this.#keeping.delete(host);
    const moved = server.address.port === 0 && before !== announced.port;
    const targets = moved ? [...this.#connected.keys()] : [host];
    return targets.flatMap((t) => this.#allHolds(t));
  }

  /** Every hold a host is sent at its welcome: the latest version of each image, and (image-keep) the older ones to retain. */
  #allHolds(host: string): OutgoingMessage[] {
    const keep = this.#keepList(host);
    if (keep === undefined) return this.#catalog.latestVersions().map((v) => this.#hold(host, v.manifest, v.originSite));
    const latest = new Map(this.#catalog.latestVersions().map((v) => [v.manifest.imageId, v.manifest.version]));
    return this.#catalog.versions().map((v) =>
      this.#hold(host, v.manifest, v.originSite, { keep, ...(latest.get(v.manifest.imageId) === v.manifest.version ? {} : { mode: 'retain' as const }) }));
  }

  /** The catalogue's every version, for a host that speaks image-keep (undefined: it does not, or there are too many to name). */
  #keepList(host: string): ImageHold['keep'] {
    if (!this.#keeping.has(host)) return undefined;
    const all = this.#catalog.versions();
    if (all.length > MAX_KEEP_VERSIONS) {
      this.#log.warn({ host, versions: all.length, max: MAX_KEEP_VERSIONS }, 'more image versions than one hold names: sites keep every chunk (delete old versions)');
      return undefined;
    }
    return all.map((v) => ({ imageId: v.manifest.imageId, version: v.manifest.version }));
  }

  /**
   * Where a site's chunk server is reached now (the publish path):
   * ImageSiteError for a site without one, or whose port is not known yet.
   */
  serverOf(site: string): { peer: string; address: { host: string; port: number } } {
    const s = [...this.#servers.values()].find((x) => x.site === site);
    if (s === undefined) {
      const sites = [...this.#servers.values()].map((x) => x.site).sort();
      throw new ImageSiteError(site, `has no chunk server in the deployment (sites with one: ${sites.length > 0 ? sites.join(', ') : 'none; give a host images: {host, port}'})`);
    }
    const port = s.address.port !== 0 ? s.address.port : this.#connected.get(s.host);
    if (port === undefined) throw new ImageSiteError(site, `its chunk server's port is known once host ${s.host}'s daemon is connected (the deployment says port 0)`);
    return { peer: s.host, address: { host: s.address.host, port } };
  }

  sessionClosed(host: string): void {
    this.#connected.delete(host);
    this.#keeping.delete(host);
  }

  /** A new version is durable: every connected server is asked to hold it. */
  published(manifest: ImageManifest, originSite: string): OutgoingMessage[] {
    return [...this.#connected.keys()].map((t) => this.#hold(t, manifest, originSite, { keep: this.#keepList(t) }));
  }

  /**
   * Versions were deleted (durably): every connected server is told to
   * release them (image-keep) and asked to hold the image's latest version
   * now, when the latest was among them.
   */
  deleted(deleted: ReadonlyArray<{ manifest: ImageManifest; originSite: string }>): OutgoingMessage[] {
    const imageId = deleted[0]?.manifest.imageId;
    if (imageId === undefined) return [];
    const now = this.#catalog.latestVersions().find((v) => v.manifest.imageId === imageId);
    const latestGone = now === undefined || deleted.some((d) => d.manifest.version > now.manifest.version);
    return [...this.#connected.keys()].flatMap((t) => {
      const keep = this.#keepList(t);
      const out = keep === undefined ? [] : deleted.map((d) => this.#hold(t, d.manifest, d.originSite, { keep, mode: 'release' }));
      if (latestGone && now !== undefined) out.push(this.#hold(t, now.manifest, now.originSite, { keep }));
      return out;
    });
  }

  /** The VMs a host runs on image versions (its latest report replaces the one before). */
  uses(host: string, r: ImageUsesReport): void {
    this.#uses.set(host, r.vms);
  }

  /** The VMs (`vm@host`) that hosts said are configured or running on a version of the image (`version` absent: any). */
  usersOf(imageId: string, version?: number): string[] {
    const out: string[] = [];
    for (const [host, vms] of this.#uses) {
      for (const u of vms) if (u.imageId === imageId && u.version !== undefined && (version === undefined || u.version === version)) out.push(`${u.vm}@${host} (version ${u.version})`);
    }
    return out.sort();
  }

  /** A site's progress: recorded for the host's site; a report from a host that is no site's server is refused. */
  async progress(host: string, r: ImageProgressReport): Promise<void> {
    const server = this.#servers.get(host);
    if (server === undefined || !this.#connected.has(host)) {
      this.#log.warn({ host, image: r.imageId, version: r.version }, 'image progress from a host that is no site\'s chunk server: ignored');
      return;
    }
    if (r.state === 'stalled') {
      this.#log.warn({ host, site: server.site, image: r.imageId, version: r.version, held: r.held, total: r.total, code: r.error?.code, detail: r.error?.message }, 'image propagation stalled at a site');
    }
    if (r.total === 0) return; // a hold the daemon refused outright: nothing to record
    const stalled = r.state === 'stalled' ? r.error ?? { code: 'VNET_ERR_IMAGE_PROPAGATION', message: 'stalled' } : undefined;
    await this.#catalog.recordProgress({ imageId: r.imageId, version: r.version, site: server.site, held: r.held, total: r.total }, stalled);
  }

  /** A VM's boot trace, kept (the latest per VM, in memory) for `vnet ctl images boot-trace ID --from-vm VM`. */
  bootTrace(host: string, t: ImageBootTraceReport): void {
    this.#traces.set(t.vm, { host, imageId: t.imageId, version: t.version, accessOrder: t.accessOrder });
    this.#log.info({ host, vm: t.vm, image: t.imageId, version: t.version, chunks: t.accessOrder.length }, 'boot trace recorded by a VM');
  }

  /** The boot trace a VM recorded last (undefined: none reported since the controller started). */
  bootTraceOf(vm: string): RecordedBootTrace | undefined {
    return this.#traces.get(vm);
  }

  #hold(host: string, manifest: ImageManifest, origin: string, extra: { keep?: ImageHold['keep']; mode?: ImageHold['mode'] } = {}): OutgoingMessage {
    const site = this.#servers.get(host)!.site;
    const replicas: ImageHoldReplica[] = [];
    for (const s of this.#servers.values()) {
      if (s.site === site) continue;
      const port = s.address.port !== 0 ? s.address.port : this.#connected.get(s.host);
      if (port === undefined) continue; // its port is known once its daemon says hello
      replicas.push({ site: s.site, peer: s.host, address: { host: s.address.host, port }, rttMs: this.#rtt(site, s.site) });
    }
    replicas.sort((a, b) => a.rttMs - b.rttMs || (a.site < b.site ? -1 : 1));
    const message: ControllerMessage = {
      type: 'image-hold',
      manifest: { ...manifest, chunks: [...manifest.chunks], accessOrder: [...manifest.accessOrder] },
      origin,
      replicas,
      ...(extra.mode !== undefined ? { mode: extra.mode } : {}),
      ...(extra.keep !== undefined ? { keep: extra.keep } : {}),
    };
    return { host, message };
  }
}
