import { ipAddressProblem, urlHost } from './ip-address.ts';

/** A TCP endpoint, and its text form `host:port` or `[v6]:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, an IPv6 literal in brackets: `[fd00::1]:7000`. */
export function formatHostPort(a: HostPort): string {
  return `${urlHost(a.host)}:${a.port}`;
}

/** Parse `host:port`, `[v6]:port` or `:port` (loopback); undefined when it is not one. */
export function parseHostPort(text: string): HostPort | undefined {
  return hostPortOrProblem(text).endpoint;
}

/**
 * Parse `host:port`, `[v6]:port` or `:port` (IPv4 loopback), or say what is
 * wrong with it: an IPv6 literal needs brackets, a bracketed one must be an
 * IPv6 address without a zone id, the port is 0–65535.
 */
export function hostPortOrProblem(text: string): { endpoint: HostPort; problem?: undefined } | { endpoint?: undefined; problem: string } {
  const bracketed = /^\[([^\]]*)\]:(\d{1,5})$/.exec(text);
  const m = bracketed ?? /^([^:\s[\]]*):(\d{1,5})$/.exec(text);
  if (m === null) {
    return { problem: text.split(':').length > 2 && !text.startsWith('[') ? 'an IPv6 address goes in brackets: [fd00::1]:7000' : 'expected HOST:PORT or [IPv6]:PORT' };
  }
  const port = Number(m[2]);
  if (port > 65_535) return { problem: `port ${port} is over 65535` };
  const host = m[1]!;
  if (bracketed !== null) {
    const problem = ipAddressProblem(host) ?? (host.includes(':') ? undefined : `"${host}" in brackets is not an IPv6 address`);
    if (problem !== undefined) return { problem };
  }
  return { endpoint: { host: host === '' ? '127.0.0.1' : host, port } };
}
