/**
 * The processes of a network namespace, found the way `ip netns pids` finds
 * them, without running it: a process belongs to a namespace when its
 * /proc/PID/ns/net is the same nsfs inode (device and inode number) as the
 * namespace's file under /var/run/netns. A whole process counts by its main
 * thread; a thread of another process that has setns()ed into the namespace
 * for a moment (as the TAP addon's helper thread does) is not the VM's.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';

/** A namespace's identity: the nsfs inode its file and every member's /proc/PID/ns/net resolve to. */
export interface NamespaceId {
  readonly dev: number;
  readonly ino: number;
}

/** The identity of the namespace at `path` (a /var/run/netns file or /proc/PID/ns/net), or undefined if there is none. */
export function namespaceId(path: string): NamespaceId | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? undefined : { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

export function sameNamespace(a: NamespaceId, b: NamespaceId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** The pids of the processes in namespace `ns` now (a process that exits meanwhile is skipped). */
export function pidsInNamespace(ns: NamespaceId): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const id = namespaceId(`/proc/${entry}/ns/net`);
    if (id !== undefined && sameNamespace(id, ns)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * A process's start time (clock ticks since boot, /proc/PID/stat field 22) and
 * state letter, or undefined once it is gone: the start time tells a process
 * from a later one that reuses its pid.
 */
export function processStat(pid: number): { start: number; state: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = Number(fields[19]);
  if (state === undefined || !Number.isFinite(start)) return undefined;
  return { start, state };
}
