/**
 * What the election key holds while a replica leads (docs/ha.md): its name
 * and the addresses daemons and operators reach it at. A replica that does
 * not lead reads it to name the leader — in its refusal of a daemon's hello
 * (the control URL), in its answer to an API write (the API URL), and in
 * `vnet ctl status`.
 */

export interface LeaderRecord {
  name: string;
  /** wss://HOST:PORT/control */
  control?: string | undefined;
  /** https://HOST:PORT or http://HOST:PORT */
  api?: string | undefined;
}

/** The election key's value for this replica. */
export function encodeLeaderRecord(record: LeaderRecord): string {
  return JSON.stringify({ name: record.name, ...(record.control !== undefined ? { control: record.control } : {}), ...(record.api !== undefined ? { api: record.api } : {}) });
}

/**
 * The election key's value read back. A plain name (a replica of an earlier
 * version, or a value that is not this record) is a leader with no known
 * addresses; an address that is not a URL of the expected scheme is dropped,
 * never followed.
 */
export function parseLeaderRecord(value: string): LeaderRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return { name: value };
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { name?: unknown }).name !== 'string') return { name: value };
  const r = parsed as Record<string, unknown>;
  return {
    name: r.name as string,
    control: urlOf(r.control, ['wss:']),
    api: urlOf(r.api, ['https:', 'http:']),
  };
}

function urlOf(v: unknown, protocols: readonly string[]): string | undefined {
  if (typeof v !== 'string' || v.length > 2048) return undefined;
  try {
    return protocols.includes(new URL(v).protocol) ? v : undefined;
  } catch {
    return undefined;
  }
}
