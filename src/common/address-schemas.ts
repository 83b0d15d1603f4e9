import { z } from 'zod';
import { canonicalAddress, ipAddressProblem, ipVersion, isAddressWithPrefix } from './ip-address.ts';

/**
 * The zod schemas of addresses in configuration files (the daemon's, the
 * deployment's), so that both read `host:` and `ip:` alike and say the same
 * thing when one is wrong.
 */

/** Why `text` will not do as a `host:` (a host name, an IPv4 or an IPv6 literal); undefined: it will. */
export function hostProblem(text: string): string | undefined {
  if (text.startsWith('[') || text.includes('%')) return ipAddressProblem(text);
  if (text.includes(':') && ipVersion(text) !== 6) return `"${text}" is not an IPv6 address (a host name has no ":")`;
  if (/\s/.test(text)) return `"${text}" is not a host name or address`;
  return undefined;
}

/** A `host:`: a host name or an IP address (IPv6 without brackets, no zone id). */
export const hostSchema = z.string().min(1).superRefine((s, ctx) => {
  const problem = hostProblem(s);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** A VM's address: IPv4 or IPv6, stored in its canonical text. */
export const vmAddressSchema = z.string()
  .refine((s) => ipAddressProblem(s) === undefined, 'not an IPv4 or IPv6 address (expected e.g. 10.0.0.1 or fd00::1; no zone id)')
  .transform(canonicalAddress);

/** An interface address, optionally with its prefix length: `10.0.0.1/24`, `fd00::1/64`. */
export const addressWithPrefixSchema = z.string()
  .refine((s) => !s.includes('%') && isAddressWithPrefix(s), 'not an IPv4 or IPv6 address, optionally with /prefix (e.g. 10.0.0.1/24, fd00::1/64)');
