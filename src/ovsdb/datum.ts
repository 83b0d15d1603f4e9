/**
 * OVSDB's JSON forms of values (RFC 7047 §5.1): a set is ["set", [atoms]]
 * (or one bare atom), a map ["map", [[key, value], …]], a uuid
 * ["uuid", "…"], a uuid named within a transaction ["named-uuid", "…"].
 */

export type Uuid = ['uuid', string];
export type NamedUuid = ['named-uuid', string];

export function namedUuid(name: string): NamedUuid {
  return ['named-uuid', name];
}

export function uuid(id: string): Uuid {
  return ['uuid', id];
}

export function toSet(values: readonly unknown[]): ['set', unknown[]] {
  return ['set', [...values]];
}

export function toMap(entries: Record<string, string>): ['map', [string, string][]] {
  return ['map', Object.entries(entries)];
}

/** The atoms of a set column (a bare atom is a set of one). */
export function fromSet(value: unknown): unknown[] {
  if (Array.isArray(value) && value[0] === 'set' && Array.isArray(value[1])) return value[1] as unknown[];
  return value === undefined ? [] : [value];
}

/** A map column of strings. */
export function fromMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(value) && value[0] === 'map' && Array.isArray(value[1])) {
    for (const pair of value[1] as unknown[]) {
      if (Array.isArray(pair) && typeof pair[0] === 'string') out[pair[0]] = String(pair[1]);
    }
  }
  return out;
}

/** The uuid string of a ["uuid", "…"] atom. */
export function uuidOf(value: unknown): string | undefined {
  return Array.isArray(value) && value[0] === 'uuid' && typeof value[1] === 'string' ? value[1] : undefined;
}

/** An integer column that may be an empty set (e.g. `ofport` before ovs-vswitchd assigns it). */
export function optionalInteger(value: unknown): number | undefined {
  const [v] = fromSet(value);
  return typeof v === 'number' ? v : undefined;
}
