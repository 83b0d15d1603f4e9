import { z } from 'zod';

/**
 * Feature negotiation on the control channel (docs/control-protocol.md,
 * "Features and mixed versions"). Both ends decode strictly: a field the
 * receiver does not know makes the whole message invalid. So a field added
 * to a message after protocol 3's core is a *feature*, and a side sends it
 * only when the other has listed that feature:
 *
 *   hello {…, features: [what this daemon understands]}        →
 *                          ← welcome {…, features: [what this controller understands]}
 *                            (only in answer to a hello that had a list)
 *   in the session: each side sends a feature's fields only when both lists
 *   hold it (negotiated); a peer with no list gets the core fields only.
 *
 * A controller older than the lists refuses a hello that has one ("unknown
 * key(s) features", fatal): the daemon says hello again at once without it,
 * and sends that controller core fields only (`isFeaturesRefusal`).
 *
 * Names not known to a side are ignored by it (a newer peer's list), so a
 * list is forward compatible. Adding a feature: name it here, make its field
 * optional in the schema, and strip it in `withFeatures` below. A feature
 * may also be a message type (`patch-rules`): sent only when negotiated.
 */

/** The features this build speaks (both ends). */
export const CONTROL_FEATURES = [
  /** A migration report's `timing` (the cutover's moments on the daemon, migration-control.ts). */
  'migration-timing',
  /** A packet port's `packet` counters in its facts (spoofed, truncated, kernel drops: docs/daemon.md). */
  'port-packet-counters',
  /** `patch-rules`: a rule set's changes since the version the daemon holds, instead of the whole set (rule-patch.ts). */
  'rule-patches',
  /**
   * An image-hold's `keep` (the catalogue's every version) and `mode` (retain an older version's chunks, release a
   * deleted one), and the daemon's `image-uses` report (image-control.ts): what lets a site collect unneeded chunks.
   */
  'image-keep',
] as const;

export type ControlFeature = (typeof CONTROL_FEATURES)[number];

/** The most names in a list, and the longest name, a peer may send. */
export const MAX_FEATURES = 64;
export const featureListSchema = z.array(z.string().min(1).max(64)).max(MAX_FEATURES);

/** What both lists hold and this build knows; none when the peer sent no list (an older peer). */
export function negotiateFeatures(theirs: readonly string[] | undefined, mine: readonly string[] = CONTROL_FEATURES): ReadonlySet<ControlFeature> {
  if (theirs === undefined) return NO_FEATURES;
  const known = new Set<string>(CONTROL_FEATURES);
  return new Set(theirs.filter((f): f is ControlFeature => known.has(f) && mine.includes(f)));
}

export const NO_FEATURES: ReadonlySet<ControlFeature> = new Set();

/** The welcome's `features` for a hello: this controller's list when the hello had one, else nothing (an older daemon's welcome schema has no such key). */
export function welcomeFeatures(hello: { features?: readonly string[] | undefined }): { features?: string[] } {
  return hello.features === undefined ? {} : { features: [...CONTROL_FEATURES] };
}

/**
 * Whether a controller's refusal of a hello says it does not know the
 * `features` key: a controller older than feature negotiation, which takes
 * the same hello without it.
 */
export function isFeaturesRefusal(error: { code: string; message: string }): boolean {
  return error.code === 'VNET_ERR_CONTROL_MESSAGE' && /invalid hello: unknown key\(s\) (?:[\w-]+, )*features\b/.test(error.message);
}

/** `value` with the fields of features not in `features` left out (the report's `timing`, a port's `packet` counters). */
export function withFeatures<T extends object>(value: T, features: ReadonlySet<ControlFeature>, feature: ControlFeature, key: keyof T): T {
  if (features.has(feature) || !(key in value)) return value;
  const { [key]: _dropped, ...rest } = value;
  return rest as T;
}
