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
      for (const m of text.slice(0, cut + 1).matchAll(/icmp_seq=(\d+)/g)) {
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

  /** Echoes never answered, up to the last one answered (the one in flight at the end is not counted). */
  lost(): number[] {
    const out: number[] = [];
    for (let s = 1; s <= this.maxSeq; s++) if (!this.seqs.has(s)) out.push(s);
    return out;
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


/** What a migration test watches while a VM moves: the pinger, the checked TCP stream, the VM's NIC before the move. */
export interface MoveProbes {
  ping: Pinger;
  stream: { stop(): Promise<{ intact: boolean; error: string | undefined }> };
  before: { mac: string; ips: string[] };
}

/**
 * The checks a finished move of VM `vm` from `from` to `to` ends with:
 * `pings` more echoes answered, the TCP stream intact, no ping lost, the
 * VM's MAC and IP as before, its port gone from `from` and present on `to`.
 */
export async function assertMovedIntact(t: TestContext, o: NetnsOverlayBase, probes: MoveProbes, move: { vm: number; from: string; to: string }, pings = 100): Promise<void> {
  await probes.ping.more(pings, 'pings after the move');
  const figures = await probes.stream.stop();
  assert.ok(figures.intact, `the TCP stream: ${figures.error}`);
  const lost = probes.ping.lost();
  t.diagnostic(`pings answered ${probes.ping.seqs.size} of ${probes.ping.maxSeq}; lost ${lost.length} ${JSON.stringify(lost.slice(0, 20))}`);
  assert.deepEqual(lost, [], 'no ping lost');
  assert.deepEqual(await nicOf(o, move.vm), probes.before, 'the VM keeps its MAC and IP');
  const dev = o.vms[move.vm]!.dev;
  assert.equal(await portAt(o, move.from, dev), undefined, `${move.from} let the VM's port go`);
  assert.ok(await portAt(o, move.to, dev) !== undefined, `the VM's port on ${move.to}`);
}
