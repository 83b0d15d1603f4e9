import { z } from 'zod';
import { hostIdSchema } from './rule-spec.ts';

/**
 * Image propagation between sites, as the controller steers it over the
 * control channel (docs/control-protocol.md, "Images"; docs/images.md). The
 * chunks never pass through the controller: a site's daemon fetches them
 * from the other sites' chunk servers over mutual TLS.
 *
 *   daemon                                        controller
 *     hello {…, images: {host, port}}  →          (this daemon keeps its site's chunk store, served there)
 *                                     ← image-hold {manifest, origin, replicas}   (a version to hold; at each
 *                                                   welcome and each publish; replicas nearest first)
 *     image-progress {imageId, version, held, total, state, error?} →   (at start, at most once a second,
 *                                                   and when done or stalled) → ImageCatalog.recordProgress
 *     image-boot-trace {imageId, version, vm, accessOrder} →   (a VM here on a disk from the image: the
 *                                                   chunks it read first, once recorded) → kept for
 *                                                   `vnet ctl images boot-trace ID --from-vm VM`
 *
 * Deletion and collection (feature `image-keep`, control-features.ts; a
 * daemon that did not list it gets the core hold only and never collects):
 *
 *                                     ← image-hold {…, mode?, keep}   (every version of the catalogue at each
 *                                                   welcome — the latest to propagate, older ones `retain`;
 *                                                   a deleted one `release`; each with `keep`, the catalogue's
 *                                                   every version, so what is not in it was deleted)
 *     image-uses {vms: [{vm, imageId, version?}]} →   (the VMs here on a disk from an image: configured,
 *                                                   waiting or running; at each keep and when they change)
 *                                                   → a version in use is not deleted (409)
 *
 * Added to protocol version 3 without a version bump, and additive: the
 * controller sends `image-hold` only to a daemon whose hello announced a
 * chunk store (`images`), so a daemon that predates it is never sent one;
 * a daemon that announces a store speaks both messages. Holding is
 * idempotent: a repeated hold of a version re-reports where it stands.
 */

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const site = z.string().min(1).max(64);
const address = z.strictObject({ host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535) });
const imageId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an image id is 1-63 lower-case letters, digits, ".", "_" or "-"');
const digest = z.string().regex(/^[0-9a-f]{16}-[0-9a-f]{64}$/, 'not a chunk digest');

/** The most chunks of a version one image-hold carries (under the 1 MiB message limit: 40 GiB in 4 MiB chunks). */
export const MAX_HOLD_CHUNKS = 10_000;
/** The most replicas one image-hold names. */
export const MAX_HOLD_REPLICAS = 256;

/** Where the daemon serves its site's chunk store (announced in the hello). */
export const imageAnnounceSchema = address;

/** A manifest's shape on the wire; the daemon checks the rest (sizes, indexes) with the images layer's validateManifest. */
const wireManifest = z.strictObject({
  imageId,
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  chunkSize: z.number().int().min(1).max(64 * 1024 * 1024),
  size: count,
  chunks: z.array(digest).max(MAX_HOLD_CHUNKS),
  accessOrder: z.array(z.number().int().min(0).max(MAX_HOLD_CHUNKS)).max(MAX_HOLD_CHUNKS),
});

const replica = z.strictObject({
  site,
  /** The host serving the site's chunks: its certificate must name it. */
  peer: hostIdSchema,
  address,
  /** Round-trip time from the daemon's site to this one (the deployment's), for nearest-first. */
  rttMs: z.number().min(0).max(100_000),
});

/** The most versions a hold's `keep` names (the catalogue's; past it the controller sends no keep and no site collects). */
export const MAX_KEEP_VERSIONS = 1024;
/** The most VMs one image-uses report names. */
export const MAX_USES_VMS = 1024;

const versionRef = z.strictObject({ imageId, version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });

/** How a hold's version is held (feature `image-keep`; absent: propagate, the core meaning). */
export const IMAGE_HOLD_MODES = ['retain', 'release'] as const;

export const imageHoldSchema = z.strictObject({
  type: z.literal('image-hold'),
  manifest: wireManifest,
  /** The site the version was published at (which holds every chunk). */
  origin: site,
  /** The other sites' chunk servers (this site's own is left out). */
  replicas: z.array(replica).max(MAX_HOLD_REPLICAS),
  /**
   * Feature `image-keep`: `retain` — an older version: its chunks here are kept, VMs may open it, nothing is
   * fetched ahead of them; `release` — the version was deleted: forget it (its chunks are collected).
   */
  mode: z.enum(IMAGE_HOLD_MODES).optional(),
  /** Feature `image-keep`: every version the catalogue keeps now; a version held here that is not in it was deleted. */
  keep: z.array(versionRef).max(MAX_KEEP_VERSIONS).optional(),
});

export const IMAGE_PROGRESS_STATES = ['propagating', 'complete', 'stalled'] as const;

export const imageProgressSchema = z.strictObject({
  type: z.literal('image-progress'),
  imageId,
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** Distinct chunks of the version held at the site, of `total`. */
  held: count,
  total: count,
  state: z.enum(IMAGE_PROGRESS_STATES),
  /** `stalled`: why (it is retried). */
  error: z.strictObject({ code: z.string().max(128), message: z.string().max(4096) }).optional(),
}).refine((p) => p.held <= p.total, 'held is at most total');

/** The chunks a VM on a disk from this version read first (indexes, first-read order, each once). */
export const imageBootTraceSchema = z.strictObject({
  type: z.literal('image-boot-trace'),
  imageId,
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** The VM's name (its port's, on the daemon). */
  vm: z.string().min(1).max(64),
  accessOrder: z.array(z.number().int().min(0).max(MAX_HOLD_CHUNKS)).min(1).max(MAX_HOLD_CHUNKS),
}).refine((t) => new Set(t.accessOrder).size === t.accessOrder.length, 'each chunk is in accessOrder once');

/** Feature `image-keep`: the VMs here whose disk is an image version (`version` absent: the latest, not yet opened). */
export const imageUsesSchema = z.strictObject({
  type: z.literal('image-uses'),
  vms: z.array(z.strictObject({ vm: z.string().min(1).max(64), imageId, version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional() })).max(MAX_USES_VMS),
});

export type ImageAnnounce = z.output<typeof imageAnnounceSchema>;
export type ImageHold = z.output<typeof imageHoldSchema>;
export type ImageHoldReplica = ImageHold['replicas'][number];
export type ImageProgressReport = z.output<typeof imageProgressSchema>;
export type ImageBootTraceReport = z.output<typeof imageBootTraceSchema>;
export type ImageUsesReport = z.output<typeof imageUsesSchema>;
/** What a daemon's image side sends the controller. */
export type ImageReport = ImageProgressReport | ImageBootTraceReport | ImageUsesReport;

/**
 * The daemon's side of image propagation (src/host/image-propagator.ts), as
 * the controller agent drives it. Never throws: a hold it cannot carry out
 * becomes a `stalled` report.
 */
export interface ImageControl {
  /** Where this daemon serves its site's chunk store (sent in the hello). */
  readonly announce: ImageAnnounce;
  handle(hold: ImageHold): void;
  /** Reports to send to the controller. Returns the unsubscribe function. */
  onReport(handler: (report: ImageReport) => void): () => void;
}
