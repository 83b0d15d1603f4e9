/**
 * The URL of an HTTP request's target (RFC 9112 §3.2), for the operator API
 * and the daemon's admin interface. Origin-form ("/a/b?q=1") is taken as a
 * path as it is: "//x/y" is the path "//x/y", not a host "x" (resolving it
 * against a base would). Absolute-form ("http://h/a") is parsed as a URL;
 * "*" is the path "*". Anything that does not parse is undefined: the caller
 * answers 400, never 500.
 */
export function parseRequestTarget(target: string): URL | undefined {
  try {
    if (target.startsWith('/')) return new URL(`http://localhost${target}`);
    if (target === '*') return new URL('http://localhost/*');
    const url = new URL(target);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** What a 400 says of a target that does not parse (cut to 80 characters). */
export function badTargetMessage(target: string): string {
  return `request target ${JSON.stringify(target.slice(0, 80))} is not a path or URL`;
}
