import { z } from 'zod';
import { isChunkDigest } from '../../images/chunk-digest.ts';
import { MAX_CHUNK_SIZE } from '../../images/manifest.ts';
import type { ImageCatalog } from '../image-catalog.ts';
import type { ImagePublisher } from '../image-publisher.ts';
import { ApiNotSupportedError } from './errors.ts';
import type { Router } from './router.ts';
import { parseRequest, queryObject } from './schemas.ts';
import { API_PREFIX, noQuery, ok, pathParam, type RouteHandler } from './v1-routes.ts';

/**
 * Image routes of the operator API (docs/images.md):
 *   GET  /api/v1/images                       every image: versions, where each is replicated, progress (any token)
 *   GET  /api/v1/images/:id                   one image, with nextVersion (404 when never published; an image
 *                                             whose every version was deleted answers, with no versions)
 *   PUT  /api/v1/images/:id/chunks/:digest    ?site=S — one chunk's bytes (application/octet-stream, at most
 *                                             64 MiB) to the origin site's chunk server (operator)
 *   POST /api/v1/images/:id/versions          {version, chunkSize, size, chunks, accessOrder?, site?} — the
 *                                             version, written once every chunk is at the site (operator):
 *                                             201, or 200 for the same manifest again; 409 for another,
 *                                             or for a number deleted before (never reused)
 *   DELETE /api/v1/images/:id/versions/:v     the version (operator): 200 {imageId, deleted: [v]}; 404 unknown;
 *                                             409 VNET_ERR_IMAGE_IN_USE naming the VMs on it
 *   DELETE /api/v1/images/:id                 every version of the image, the same way
 *   POST /api/v1/images/:id/boot-trace        {fromVm} — the boot trace that VM recorded (on a disk from
 *                                             the latest version) published as the next version's
 *                                             accessOrder (201; 200 when the latest has it already)
 * Added only where the controller has an image catalog (and then listed in the API's index). The
 * publishing routes answer 501 where the controller has no publisher; a replica that does not
 * lead redirects them to the leader before that (api-server.ts).
 */

const imageIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an image id is 1-63 lower-case letters, digits, ".", "_" or "-"');
const digestSchema = z.string().refine(isChunkDigest, 'a chunk digest is <xxh64>-<sha256> in hex');
const siteSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a site id');
const siteQuerySchema = z.strictObject({ site: siteSchema.optional() });
/** A manifest of the most chunks the control channel carries is about 0.9 MB of JSON. */
const MAX_VERSION_BODY_BYTES = 2 * 1024 * 1024;
const versionBodySchema = z.strictObject({
  version: z.number().int().min(1),
  chunkSize: z.number().int().min(1).max(MAX_CHUNK_SIZE),
  size: z.number().int().min(0),
  chunks: z.array(z.string()),
  accessOrder: z.array(z.number().int().min(0)).default([]),
  site: siteSchema.optional(),
});

const versionParamSchema = z.string().regex(/^[1-9]\d{0,15}$/, 'a version is a positive integer').transform(Number).refine(Number.isSafeInteger, 'a version is a positive integer');

const bootTraceBodySchema = z.strictObject({ fromVm: z.string().min(1).max(64) });

export function addImageRoutes(r: Router<RouteHandler>, images: ImageCatalog, publisher?: ImagePublisher): void {
  r.add('GET', `${API_PREFIX}/images`, (ctx) => {
    noQuery(ctx);
    return ok({ images: images.list() });
  });
  r.add('GET', `${API_PREFIX}/images/:id`, (ctx) => {
    noQuery(ctx);
    return ok(images.get(pathParam(ctx, 'id', imageIdSchema)));
  });
  const publishing = (): ImagePublisher => {
    if (publisher === undefined) throw new ApiNotSupportedError('publishing images');
    return publisher;
  };
  r.add('PUT', `${API_PREFIX}/images/:id/chunks/:digest`, async (ctx) => {
    pathParam(ctx, 'id', imageIdSchema);
    const digest = pathParam(ctx, 'digest', digestSchema);
    const p = publishing();
    const site = parseRequest(siteQuerySchema, queryObject(ctx.query), 'query').site ?? p.defaultSite;
    const bytes = await ctx.bytes(MAX_CHUNK_SIZE);
    await p.storeChunk(site, digest, bytes);
    return ok({ site, digest, bytes: bytes.length });
  });
  r.add('POST', `${API_PREFIX}/images/:id/versions`, async (ctx) => {
    noQuery(ctx);
    const p = publishing();
    const imageId = pathParam(ctx, 'id', imageIdSchema);
    const { site, ...rest } = parseRequest(versionBodySchema, await ctx.body(MAX_VERSION_BODY_BYTES), 'body');
    const { manifest, created } = await p.publish({ imageId, ...rest }, site ?? p.defaultSite);
    const version = images.get(imageId).versions.find((v) => v.version === manifest.version);
    return { status: created ? 201 : 200, body: { imageId, ...version } };
  });
  r.add('DELETE', `${API_PREFIX}/images/:id/versions/:version`, async (ctx) => {
    noQuery(ctx);
    const imageId = pathParam(ctx, 'id', imageIdSchema);
    const version = pathParam(ctx, 'version', versionParamSchema);
    return ok({ imageId, deleted: await publishing().deleteVersions(imageId, version) });
  });
  r.add('DELETE', `${API_PREFIX}/images/:id`, async (ctx) => {
    noQuery(ctx);
    const imageId = pathParam(ctx, 'id', imageIdSchema);
    return ok({ imageId, deleted: await publishing().deleteVersions(imageId, undefined) });
  });
  r.add('POST', `${API_PREFIX}/images/:id/boot-trace`, async (ctx) => {
    noQuery(ctx);
    const p = publishing();
    const imageId = pathParam(ctx, 'id', imageIdSchema);
    const { fromVm } = parseRequest(bootTraceBodySchema, await ctx.body(4096), 'body');
    const { manifest, created } = await p.publishBootTrace(imageId, fromVm);
    const version = images.get(imageId).versions.find((v) => v.version === manifest.version);
    return { status: created ? 201 : 200, body: { imageId, ...version } };
  });
}
