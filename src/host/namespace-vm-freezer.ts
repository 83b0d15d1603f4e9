/**
 * Stopping and restarting a namespace VM's processes, two ways behind one
 * interface:
 *
 *   cgroup   the cgroup v2 freezer: the VM's processes are moved into a cgroup
 *            of its own (<cgroup2 mount>/vnet-vms/<netns>) and `cgroup.freeze`
 *            is written. The kernel freezes every task of the cgroup, children
 *            forked at that moment included (they start in their parent's
 *            cgroup), invisibly to the processes (no signal, no SIGCHLD to a
 *            parent, a process stopped by its own job control stays stopped).
 *            A process moved into the cgroup while it is frozen is frozen too.
 *            Works on a pure v2 system (/sys/fs/cgroup) and on a hybrid one
 *            (/sys/fs/cgroup/unified), as root.
 *   signal   SIGSTOP to each process, SIGCONT at resume: everywhere, but
 *            visible (a parent waiting with WUNTRACED sees the stop; a process
 *            that was stopped before the pause is continued by the resume).
 *            Processes are remembered with their start time, so a pid reused
 *            meanwhile is never signalled.
 *
 * `adopt` takes the processes found in the namespace: before `freeze` they
 * are only remembered (moved into the cgroup); while frozen they are frozen at
 * once. `freeze` and `settle` resolve when every adopted process is stopped
 * (cgroup.events says `frozen 1`, or /proc/PID/stat says `T`), or throw
 * VmFreezeError after the bound.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { VmFreezeError, VmFreezePermissionError } from './errors.ts';
import { processStat } from './namespace-vm-processes.ts';

export type FreezerKind = 'cgroup' | 'signal';

export interface Freezer {
  readonly kind: FreezerKind;
  /** Take these processes (those already adopted are skipped); frozen at once while frozen. */
  adopt(pids: readonly number[]): void;
  /** Stop every adopted process; resolves when they are all stopped. */
  freeze(): Promise<void>;
  /** While frozen: resolves when every adopted process (newcomers included) is stopped. */
  settle(): Promise<void>;
  /** Let them run again. */
  thaw(): Promise<void>;
  /** Thaw, give the processes back (their original cgroups), remove what was made; never throws. */
  dispose(): Promise<void>;
}

/** Polls `done` every few milliseconds up to `timeoutMs`, then throws VmFreezeError naming `what`. */
async function until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let delay = 0;
  while (!done()) {
    if (performance.now() > deadline) throw new VmFreezeError(`${what} not done within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(5, delay + 1);
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function freezeFailure(what: string, err: unknown): Error {
  const code = errnoCode(err);
  if (code === 'EPERM' || code === 'EACCES') return new VmFreezePermissionError(`${what}: ${code}`, { cause: err });
  return new VmFreezeError(`${what}: ${code ?? String(err)}`, { cause: err });
}

/** Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid system), or undefined. */
export function cgroup2Mount(): string | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) return left?.split(' ')[4];
  }
  return undefined;
}

/** The cgroup v2 path of a process (`0::/a/b` in /proc/PID/cgroup), or undefined. */
function cgroupOf(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

export class CgroupFreezer implements Freezer {
  readonly kind = 'cgroup' as const;
  readonly dir: string;
  readonly #mount: string;
  readonly #timeoutMs: number;
  /** Where each adopted process came from (its cgroup path under the mount), to give it back. */
  readonly #origin = new Map<number, string>();
  /** The first directory mkdir made (dir or one of its parents): removed up to it at dispose. */
  readonly #made: string | undefined;
  /** Remove `dir`'s parent at dispose when it is empty, whoever made it (the shared vnet-vms cgroup: a VM handed between two daemons is disposed by the one that did not make it). */
  readonly #removeEmptyParent: boolean;
  #frozen = false;

  /** A cgroup at `dir` (made if missing) under the cgroup2 mount `mount`. Throws VmFreezeError / VmFreezePermissionError. */
  constructor(mount: string, dir: string, timeoutMs: number, opts: { removeEmptyParent?: boolean } = {}) {
    this.#removeEmptyParent = opts.removeEmptyParent ?? false;
    this.#mount = mount;
    this.dir = dir;
    this.#timeoutMs = timeoutMs;
    try {
      this.#made = mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw freezeFailure(`cannot make cgroup ${dir}`, err);
    }
    if (!existsSync(join(dir, 'cgroup.freeze'))) throw new VmFreezeError(`cgroup ${dir} has no cgroup.freeze (kernel before 5.2?)`);
  }

  adopt(pids: readonly number[]): void {
    const members = new Set(this.#members());
    for (const pid of pids) {
      if (members.has(pid)) continue;
      const origin = cgroupOf(pid);
      try {
        writeFileSync(join(this.dir, 'cgroup.procs'), String(pid));
      } catch (err) {
        if (errnoCode(err) === 'ESRCH') continue; // gone meanwhile
        throw freezeFailure(`cannot move process ${pid} into ${this.dir}`, err);
      }
      if (origin !== undefined && !this.#origin.has(pid)) this.#origin.set(pid, origin);
    }
  }

  async freeze(): Promise<void> {
    this.#write('1');
    this.#frozen = true;
    await this.settle();
  }

  async settle(): Promise<void> {
    if (!this.#frozen) return;
    await until(() => !this.#frozen || this.#events().get('frozen') === '1', `freezing the processes of ${this.dir}`, this.#timeoutMs);
  }

  async thaw(): Promise<void> {
    this.#write('0');
    this.#frozen = false;
  }

  async dispose(): Promise<void> {
    try {
      if (this.#frozen) await this.thaw();
      for (const pid of this.#members()) {
        const origin = this.#origin.get(pid) ?? '/';
        const target = join(this.#mount, origin, 'cgroup.procs');
        try {
          writeFileSync(target, String(pid));
        } catch {
          try {
            writeFileSync(join(this.#mount, 'cgroup.procs'), String(pid));
          } catch {
            // gone, or the root refuses: it stays (and the cgroup with it)
          }
        }
      }
      rmdirSync(this.dir);
      // The parents made with it, while empty (another VM's cgroup keeps a shared parent).
      for (let d = this.dir; this.#made !== undefined && d !== this.#made && d.startsWith(this.#made); ) {
        d = dirname(d);
        rmdirSync(d);
      }
      if (this.#removeEmptyParent && existsSync(dirname(this.dir))) rmdirSync(dirname(this.dir));
    } catch {
      // never throws: a cgroup left behind is harmless and removed with the next VM of that name
    }
  }

  #members(): number[] {
    try {
      return readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter((l) => l !== '').map(Number);
    } catch {
      return [];
    }
  }

  #events(): Map<string, string> {
    const out = new Map<string, string>();
    try {
      for (const line of readFileSync(join(this.dir, 'cgroup.events'), 'utf8').split('\n')) {
        const [k, v] = line.split(' ');
        if (k !== undefined && v !== undefined) out.set(k, v);
      }
    } catch {
      // an unreadable file reads as not frozen: the caller's bound reports it
    }
    return out;
  }

  #write(value: '0' | '1'): void {
    try {
      writeFileSync(join(this.dir, 'cgroup.freeze'), value);
    } catch (err) {
      throw freezeFailure(`cannot write ${value} to ${join(this.dir, 'cgroup.freeze')}`, err);
    }
  }
}

export class SignalFreezer implements Freezer {
  readonly kind = 'signal' as const;
  readonly #timeoutMs: number;
  /** Adopted processes and their start times. */
  readonly #members = new Map<number, number>();
  #frozen = false;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  adopt(pids: readonly number[]): void {
    for (const pid of pids) {
      if (this.#members.has(pid)) continue;
      const st = processStat(pid);
      if (st === undefined) continue;
      this.#members.set(pid, st.start);
      if (this.#frozen) this.#signal(pid, 'SIGSTOP');
    }
  }

  async freeze(): Promise<void> {
    this.#frozen = true;
    for (const pid of this.#members.keys()) this.#signal(pid, 'SIGSTOP');
    await this.settle();
  }

  async settle(): Promise<void> {
    if (!this.#frozen) return;
    await until(() => !this.#frozen || [...this.#members].every(([pid, start]) => {
      const st = processStat(pid);
      // Gone, a new process on the pid, stopped (T) or a zombie: nothing of the VM's runs there.
      return st === undefined || st.start !== start || st.state === 'T' || st.state === 'Z' || st.state === 'X';
    }), 'stopping the processes with SIGSTOP', this.#timeoutMs);
  }

  async thaw(): Promise<void> {
    this.#frozen = false;
    for (const pid of this.#members.keys()) this.#signal(pid, 'SIGCONT');
    // Found afresh at the next pause: pids of processes that exit now may be reused.
    this.#members.clear();
  }

  async dispose(): Promise<void> {
    if (this.#frozen) await this.thaw();
  }

  /** Signals a process if it is still the one adopted. */
  #signal(pid: number, signal: 'SIGSTOP' | 'SIGCONT'): void {
    const st = processStat(pid);
    if (st === undefined || st.start !== this.#members.get(pid)) return;
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (errnoCode(err) === 'ESRCH') return;
      throw freezeFailure(`cannot send ${signal} to process ${pid}`, err);
    }
  }
}
