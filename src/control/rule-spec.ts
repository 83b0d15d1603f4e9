import { z } from 'zod';
import { HOST_ID_PATTERN, HOST_ID_RULE } from '../common/host-id.ts';
import { isMacString } from '../common/mac.ts';

/**
 * A forwarding rule as carried in JSON: in a daemon's configuration file, on
 * its admin interface and over the control channel. The schema checks the
 * shape; the daemon's rule compiler (`dataplane/forwarding-rule.ts`) checks
 * the rest (ports that exist, priorities) when the set is applied.
 */
export interface RuleSpec {
  id: string;
  priority: number;
  /** "any", a MAC "02:..", or "!02:.." for not-equal. */
  src: string;
  dst: string;
  action: { port: string } | { link: string } | 'flood' | 'drop';
}

export const hostIdSchema = z.string().regex(HOST_ID_PATTERN, HOST_ID_RULE);

const macMatch = z.string().refine((s) => s === 'any' || isMacString(s.startsWith('!') ? s.slice(1) : s), 'expected "any", a MAC, or "!MAC"');

export const ruleSpecSchema = z.strictObject({
  id: z.string().min(1).max(128),
  priority: z.number().int().min(0).max(65535),
  src: macMatch,
  dst: macMatch,
  action: z.union([
    z.literal('flood'),
    z.literal('drop'),
    z.strictObject({ port: z.string().min(1) }),
    z.strictObject({ link: hostIdSchema }),
  ]),
});
