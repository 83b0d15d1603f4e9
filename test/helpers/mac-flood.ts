/**
 * A VM that misbehaves at layer 2, for the security tests and benchmark: it
 * writes raw Ethernet frames on its own interface (python3, AF_PACKET, in
 * the VM's namespace) — a bounded count at a bounded rate — with random
 * source MACs (a MAC flood) or one forged source MAC, to random unknown
 * unicast destinations or to broadcast. Plus what to read afterwards: a
 * port's security counters from its daemon's admin interface, the frames the
 * kernel dropped on the VM's side, and ping's summary.
 */
import type { PortFacts } from '../../src/control/daemon-control.ts';
import type { NetnsOverlay } from './netns-overlay.ts';

/**
 * argv: device, count, rate (frames/s), source ("random" or 12 hex digits),
 * destination ("unknown" or "broadcast"). Frames are 60 bytes, EtherType
 * 0x88b5; random MACs are locally administered unicast (first byte 0x0a).
 * Prints "sent N seconds S".
 */
const FLOOD_SCRIPT = `
import os, socket, sys, time
dev, count, rate, src, dst = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
fixed_src = None if src == 'random' else bytes.fromhex(src)
body = bytes([0x88, 0xb5]) + bytes(46)
t0 = time.monotonic()
sent = 0
while sent < count:
    for _ in range(min(64, count - sent)):
        rnd = os.urandom(10)
        d = b'\\xff' * 6 if dst == 'broadcast' else b'\\x0a' + rnd[:5]
        a = fixed_src if fixed_src is not None else b'\\x0a' + rnd[5:]
        try:
            s.send(d + a + body)
        except OSError:
            pass
        sent += 1
    ahead = t0 + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print('sent %d seconds %.3f' % (sent, time.monotonic() - t0), flush=True)
`;

export interface FloodInit {
  count: number;
  /** Frames a second, at most. */
  rate: number;
  /** "random" (every frame a new MAC) or a MAC to forge. */
  src: 'random' | string;
  dst: 'unknown' | 'broadcast';
}

export interface FloodResult {
  sent: number;
  seconds: number;
}

/** VM `i` sends `init.count` frames; resolves when it has. */
export async function flood(o: NetnsOverlay, i: number, init: FloodInit): Promise<FloodResult> {
  const vm = o.vms[i]!;
  const src = init.src === 'random' ? 'random' : init.src.replaceAll(':', '');
  const r = await o.exec(i, ['python3', '-u', '-c', FLOOD_SCRIPT, vm.dev, String(init.count), String(init.rate), src, init.dst], 120_000);
  const m = /sent (\d+) seconds ([\d.]+)/.exec(r.stdout);
  if (r.code !== 0 || m === null) throw new Error(`flood from ${vm.name} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), seconds: Number(m[2]) };
}

/** VM `i`'s port as its daemon reports it (admin GET /ports). */
export async function portOf(o: NetnsOverlay, i: number): Promise<PortFacts> {
  const vm = o.vms[i]!;
  const ports = (await o.admin(vm.host, '/ports')) as PortFacts[];
  const p = ports.find((x) => x.name === vm.dev);
  if (p === undefined) throw new Error(`no port ${vm.dev} on ${vm.host}`);
  return p;
}

/** Frames the kernel dropped on VM `i`'s interface sending (the TAP queue full: the daemon did not read them). */
export async function kernelTxDropped(o: NetnsOverlay, i: number): Promise<number> {
  const vm = o.vms[i]!;
  const r = await o.harness.exec(vm.ns, ['ip', '-s', '-j', 'link', 'show', 'dev', vm.dev]);
  const [link] = JSON.parse(r.stdout) as [{ stats64?: { tx?: { dropped?: number } } }];
  return link.stats64?.tx?.dropped ?? 0;
}

export interface PingSummary {
  sent: number;
  received: number;
  avgMs: number;
  maxMs: number;
}

/** ping's closing lines: "N packets transmitted, M received" and "rtt min/avg/max/mdev = a/b/c/d ms". */
export function pingSummary(text: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (counts === null) throw new Error(`no ping summary in: ${text}`);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(text);
  return { sent: Number(counts[1]), received: Number(counts[2]), avgMs: rtt === null ? Number.NaN : Number(rtt[2]), maxMs: rtt === null ? Number.NaN : Number(rtt[3]) };
}
