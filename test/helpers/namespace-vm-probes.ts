/**
 * What the kernel says about a namespace VM (root), for the privileged
 * migration tests (netns-overlay.ts):
 *
 *   freezerState   whether its processes are frozen: the cgroup v2 freezer's
 *                  own word (`frozen` in <cgroup2>/vnet-vms/<netns>/cgroup.events,
 *                  the cgroup namespace-vm.ts makes) and any of its processes
 *                  stopped by a signal (state T: the signal freezer)
 *   thawLeftover   a test's safety net: a VM left frozen (a daemon that died
 *                  holding it, a failed assertion) is thawed, so no test
 *                  leaves a frozen cgroup or stopped processes behind
 *   tapHolders     which processes hold a queue attached to a TAP device
 *                  (/proc/PID/fdinfo of their tun fds: `iff: <device>`, empty
 *                  once the queue is detached or the device is gone)
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../src/host/namespace-vm-freezer.ts';
import { namespaceId, pidsInNamespace, processStat } from '../../src/host/namespace-vm-processes.ts';

export interface FreezerState {
  /** The VM's cgroup: absent (never frozen, or given back), frozen, or thawed. */
  cgroup: 'absent' | 'frozen' | 'thawed';
  /** Processes in the namespace stopped by a signal. */
  stopped: number[];
}

function cgroupDir(netns: string): string | undefined {
  const mount = cgroup2Mount();
  return mount === undefined ? undefined : join(mount, 'vnet-vms', netns);
}

function stoppedIn(netns: string): number[] {
  const id = namespaceId(`/var/run/netns/${netns}`);
  return id === undefined ? [] : pidsInNamespace(id).filter((pid) => processStat(pid)?.state === 'T');
}

export function freezerState(netns: string): FreezerState {
  const dir = cgroupDir(netns);
  let cgroup: FreezerState['cgroup'] = 'absent';
  if (dir !== undefined && existsSync(join(dir, 'cgroup.events'))) {
    cgroup = /^frozen 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8')) ? 'frozen' : 'thawed';
  }
  return { cgroup, stopped: stoppedIn(netns) };
}

/** Thaws the VM of namespace `netns` if it was left frozen; says what it did ('' when nothing was frozen). */
export function thawLeftover(netns: string): string {
  const done: string[] = [];
  const dir = cgroupDir(netns);
  if (dir !== undefined && existsSync(join(dir, 'cgroup.freeze')) && readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim() === '1') {
    writeFileSync(join(dir, 'cgroup.freeze'), '0');
    done.push(`thawed cgroup ${dir}`);
  }
  for (const pid of stoppedIn(netns)) {
    try {
      process.kill(pid, 'SIGCONT');
      done.push(`continued ${pid}`);
    } catch { /* gone meanwhile */ }
  }
  return done.join(', ');
}

/** The entries of `hosts` (name → pid) whose process holds a queue attached to TAP device `dev`. */
export function tapHolders(hosts: ReadonlyMap<string, number | undefined>, dev: string): string[] {
  const out: string[] = [];
  const line = `iff:\t${dev}\n`;
  for (const [host, pid] of hosts) {
    if (pid === undefined) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        return `${readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')}\n`.includes(line);
      } catch {
        return false;
      }
    });
    if (holds) out.push(host);
  }
  return out;
}
