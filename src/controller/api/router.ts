import { ApiInvalidRequestError, ApiMethodNotAllowedError, ApiRouteNotFoundError } from './errors.ts';

/**
 * A small path router: patterns like "/api/v1/links/:a/:b", exact segment
 * matches, parameters percent-decoded. Matching returns the route (its
 * pattern names the route in metrics) and the parameters, or throws the
 * 404/405 error.
 */

export interface Route<H> {
  method: string;
  pattern: string;
  handler: H;
}

export interface RouteMatch<H> {
  route: Route<H>;
  params: Record<string, string>;
}

interface CompiledRoute<H> {
  route: Route<H>;
  segments: string[];
}

const split = (path: string): string[] => path.split('/').filter((s) => s !== '');

export class Router<H> {
  readonly #routes: CompiledRoute<H>[] = [];

  add(method: string, pattern: string, handler: H): this {
    this.#routes.push({ route: { method, pattern, handler }, segments: split(pattern) });
    return this;
  }

  /** Throws ApiRouteNotFoundError, ApiMethodNotAllowedError, or ApiInvalidRequestError for bad percent-encoding. */
  match(method: string, path: string): RouteMatch<H> {
    const parts = split(path);
    const allowed: string[] = [];
    for (const c of this.#routes) {
      const params = matchSegments(c.segments, parts);
      if (params === undefined) continue;
      if (c.route.method === method || (method === 'HEAD' && c.route.method === 'GET')) return { route: c.route, params };
      allowed.push(c.route.method);
    }
    if (allowed.length > 0) throw new ApiMethodNotAllowedError(method, path, allowed);
    throw new ApiRouteNotFoundError(method, path);
  }
}

function matchSegments(pattern: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(v);
      } catch (err) {
        throw new ApiInvalidRequestError(`path segment ${JSON.stringify(v.slice(0, 80))} is not valid percent-encoding`, p.slice(1), { cause: err });
      }
    } else if (p !== v) {
      return undefined;
    }
  }
  return params;
}
