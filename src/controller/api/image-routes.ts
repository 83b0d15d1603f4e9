import { z } from 'zod';
import type { ImageCatalog } from '../image-catalog.ts';
import type { Router } from './router.ts';
import { API_PREFIX, noQuery, ok, pathParam, type RouteHandler } from './v1-routes.ts';

/**
 * Image routes of the operator API (docs/images.md), for any token:
 *   GET /api/v1/images       every image: versions, where each is replicated, progress
 *   GET /api/v1/images/:id   one image (404 when never published)
 * Added only where the controller has an image catalog (and then listed in the API's index).
 */

const imageIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an image id is 1-63 lower-case letters, digits, ".", "_" or "-"');

export function addImageRoutes(r: Router<RouteHandler>, images: ImageCatalog): void {
  r.add('GET', `${API_PREFIX}/images`, (ctx) => {
    noQuery(ctx);
    return ok({ images: images.list() });
  });
  r.add('GET', `${API_PREFIX}/images/:id`, (ctx) => {
    noQuery(ctx);
    return ok(images.get(pathParam(ctx, 'id', imageIdSchema)));
  });
}
