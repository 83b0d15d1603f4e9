/**
 * What the privileged migration tests watch around a moving namespace VM
 * (test/helpers/netns-overlay.ts): a `ping -i 0.01` from another VM with
 * every echo answered, by sequence number; a VM's port as its daemon's admin
 * interface shows it; the MAC and IPv4 addresses of a VM's NIC.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import type { NetnsOverlayBase } from './netns-overlay.ts';
import { waitFor } from './wait.ts';

/** The interval of the migration tests' pings: 10 ms. */
export const PING_INTERVAL_MS = 10;

/** `ping -i 0.01` in a VM: the echo replies seen, by sequence number. */
export class Pinger {
  readonly #child: ChildProcess;
  readonly seqs = new Set<number>();
  maxSeq = 0;

  constructor(o: NetnsOverlayBase, from: number, ip: string) {
    this.#child = o.spawn(from, ['ping', '-n', '-i', String(PING_INTERVAL_MS / 1000), ip]);
    this.#child.stdout!.setEncoding('utf8');
    let rest = '';
    this.#child.stdout!.on('data', (chunk: string) => {
      const text = rest + chunk;
      const cut = text.lastIndexOf('\n');
      rest = text.slice(cut + 1);
      // Replies only: "64 bytes from …: icmp_seq=N"; ping's own errors ("From …: icmp_seq=N Destination Host Unreachable") are no answer.
      for (const m of text.slice(0, cut + 1).matchAll(/bytes from [^\n]*?icmp_seq=(\d+)/g)) {
        const seq = Number(m[1]);
        this.seqs.add(seq);
        this.maxSeq = Math.max(this.maxSeq, seq);
      }
    });
  }

  /** Waits for `n` more replies (a QEMU guest under TCG may need the longer bound). */
  async more(n: number, what: string, timeoutMs = 60_000): Promise<void> {
    const target = this.seqs.size + n;
    await waitFor(() => this.seqs.size >= target || this.#child.exitCode !== null, what, timeoutMs);
    if (this.#child.exitCode !== null) throw new Error(`ping exited with ${this.#child.exitCode}`);
  }

  /** Stops the ping (SIGINT); resolves once it is gone. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGINT');
    await gone;
  }

  /** Echoes never answered, up to the last one answered (the one in flight at the end is not counted). */
  lost(): number[] {
    const out: number[] = [];
    for (let s = 1; s <= this.maxSeq; s++) if (!this.seqs.has(s)) out.push(s);
    return out;
  }
}

/** A namespace's ICMP echo counters (/proc/net/snmp): what its kernel sent and took in, whatever its sockets then did. */
export interface EchoCounters { outEchos: number; inEchoReps: number; inEchos: number; outEchoReps: number }

export async function echoCounters(o: NetnsOverlayBase, i: number): Promise<EchoCounters> {
  const r = await o.exec(i, ['cat', '/proc/net/snmp']);
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('Icmp:')).map((l) => l.trim().split(/\s+/));
  const get = (k: string): number => {
    const j = names?.indexOf(k) ?? -1;
    if (j < 0 || values?.[j] === undefined) throw new Error(`no Icmp ${k} in /proc/net/snmp of vm${i}: ${r.stdout}${r.stderr}`);
    return Number(values[j]);
  };
  return { outEchos: get('OutEchos'), inEchoReps: get('InEchoReps'), inEchos: get('InEchos'), outEchoReps: get('OutEchoReps') };
}

/** Datagrams the raw sockets of VM `i`'s namespace dropped, their receive buffer full (/proc/net/raw, `drops`): a root ping's own socket. */
async function rawSocketDrops(o: NetnsOverlayBase, i: number): Promise<number> {
  const r = await o.exec(i, ['cat', '/proc/net/raw']);
  return r.stdout.split('\n').slice(1).filter((l) => l.trim() !== '').reduce((sum, l) => sum + Number(l.trim().split(/\s+/).at(-1)), 0);
}

const minus = (a: EchoCounters, b: EchoCounters): EchoCounters =>
  ({ outEchos: a.outEchos - b.outEchos, inEchoReps: a.inEchoReps - b.inEchoReps, inEchos: a.inEchos - b.inEchos, outEchoReps: a.outEchoReps - b.outEchoReps });

/**
 * What "no ping lost" means when a VM's frames were held and are flushed at
 * once (a migration that paused the VM and then aborted, or a cutover): the
 * overlay delivers every echo request, the VM answers each and every reply
 * reaches the pinging VM's kernel — its /proc/net/snmp counters, taken from
 * before the ping, agree. What `ping` prints is one step further: the
 * replies to the held requests arrive back to back, and ping's raw socket
 * (a 64 KiB receive buffer iputils sets itself; a loaded machine reads it
 * late) drops what does not fit — the kernel counts those in the socket's
 * `drops`. So the echoes ping itself misses must be no more than those.
 */
export class EchoLedger {
  readonly #o: NetnsOverlayBase;
  readonly #from: number;
  readonly #to: number;
  readonly #before: { from: EchoCounters; to: EchoCounters };

  private constructor(o: NetnsOverlayBase, from: number, to: number, before: { from: EchoCounters; to: EchoCounters }) {
    this.#o = o;
    this.#from = from;
    this.#to = to;
    this.#before = before;
  }

  /** Before the ping from VM `from` to VM `to` starts (no other ICMP between them meanwhile). */
  static async open(o: NetnsOverlayBase, from: number, to: number): Promise<EchoLedger> {
    return new EchoLedger(o, from, to, { from: await echoCounters(o, from), to: await echoCounters(o, to) });
  }

  /** Stops `ping` and asserts: every echo request answered back to the sender's kernel; ping missed no more than its socket dropped. */
  async assertAnswered(t: TestContext, ping: Pinger): Promise<void> {
    const o = this.#o;
    const drops = await rawSocketDrops(o, this.#from);
    await ping.stop();
    const lost = ping.lost();
    const sender = async (): Promise<EchoCounters> => minus(await echoCounters(o, this.#from), this.#before.from);
    // The last request's reply may still be on its way.
    await waitFor(async () => { const s = await sender(); return s.inEchoReps >= s.outEchos; }, 'the last echo reply', 10_000).catch(() => undefined);
    const s = await sender();
    const r = minus(await echoCounters(o, this.#to), this.#before.to);
    t.diagnostic(`echoes: sent ${s.outEchos}, received by the VM ${r.inEchos}, answered ${r.outEchoReps}, replies back ${s.inEchoReps}; ping saw ${ping.seqs.size} of ${ping.maxSeq} (missed ${lost.length} ${JSON.stringify(lost.slice(0, 20))}), its socket dropped ${drops}`);
    assert.ok(s.outEchos > 0, 'the ping sent echo requests');
    assert.equal(r.inEchos, s.outEchos, 'every echo request reached the VM');
    assert.equal(r.outEchoReps, r.inEchos, 'the VM answered each');
    assert.equal(s.inEchoReps, s.outEchos, 'every reply reached the sender\'s kernel');
    assert.ok(lost.length <= drops, `ping missed ${lost.length} replies, more than its socket dropped (${drops}): lost in the overlay`);
  }
}

export interface PortFacts { name: string; kind: string; mac: string; rxFrames: number; txFrames: number }

export async function portAt(o: NetnsOverlayBase, host: string, name: string): Promise<PortFacts | undefined> {
  return ((await o.admin(host, '/ports')) as PortFacts[]).find((p) => p.name === name);
}

export async function nicOf(o: NetnsOverlayBase, i: number): Promise<{ mac: string; ips: string[] }> {
  const r = await o.exec(i, ['ip', '-j', 'addr', 'show', 'dev', o.vms[i]!.dev]);
  const [link] = JSON.parse(r.stdout) as Array<{ address: string; addr_info: Array<{ family: string; local: string }> }>;
  return { mac: link!.address, ips: link!.addr_info.filter((a) => a.family === 'inet').map((a) => a.local) };
}


/** What a migration test watches while a VM moves: the pinger and its ledger (opened before it started), the checked TCP stream, the VM's NIC before the move. */
export interface MoveProbes {
  ping: Pinger;
  echoes: EchoLedger;
  stream: { stop(): Promise<{ intact: boolean; error: string | undefined }> };
  before: { mac: string; ips: string[] };
}

/**
 * The checks a finished move of VM `vm` from `from` to `to` ends with:
 * `pings` more echoes answered, the TCP stream intact, no ping lost (every
 * echo answered back to the pinger's kernel: EchoLedger, since a burst of
 * held replies flushed at the cutover can overflow `ping`'s own socket on a
 * loaded machine), the VM's MAC and IP as before, its port gone from `from`
 * and present on `to`.
 */
export async function assertMovedIntact(t: TestContext, o: NetnsOverlayBase, probes: MoveProbes, move: { vm: number; from: string; to: string }, pings = 100): Promise<void> {
  await probes.ping.more(pings, 'pings after the move');
  const figures = await probes.stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);
  await probes.echoes.assertAnswered(t, probes.ping);
  assert.deepEqual(await nicOf(o, move.vm), probes.before, 'the VM keeps its MAC and IP');
  const dev = o.vms[move.vm]!.dev;
  assert.equal(await portAt(o, move.from, dev), undefined, `${move.from} let the VM's port go`);
  assert.ok(await portAt(o, move.to, dev) !== undefined, `the VM's port on ${move.to}`);
}
