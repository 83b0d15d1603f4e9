/**
 * Handing a VM's TAP attachment from one port to another while the VM keeps
 * sending (root). The VM is a network namespace holding a multi-queue TAP
 * device, created by port A (TapPort.open) and moved in, as a daemon does;
 * port B attaches a second queue to it from inside the namespace
 * (TapPort.attach), in this process or in a second Node process, as the
 * destination daemon would; then A hands off (steer every new frame to B,
 * drain its own queue, close).
 *
 * The VM is a Python program with an AF_PACKET socket on the device: it sends
 * UDP/IPv4 frames over 64 flows (so the kernel's flow hash spreads them over
 * both queues while both are attached), each carrying a sequence number, at a
 * steady pace, before, during and after the hand-over. Every sequence number
 * must arrive at exactly one of the two ports, in order at each; none may be
 * lost beyond what the kernel counts as dropped for a full queue (tx_dropped,
 * expected 0; the hand-over itself, once the destination is attached, loses
 * nothing). In the two-process case A is kept busy just before it hands off
 * until the VM has sent 400 more frames, so that some wait on A's queue: the
 * hand-over must read them, not let the kernel drop them.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/common/logger.ts';
import type { Frame } from '../../src/common/frame.ts';
import { formatMac } from '../../src/common/mac.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { requireTools, run, useNetns, waitFor, type NetnsHarness } from '../helpers/netns.ts';

requireTools(['ip', 'python3']);

const VM_MAC = 0x02_00_00_98_00_01;
const PEER_MAC = 0x02_00_00_98_00_02;
const MTU = 1500;
const MAGIC = 0x564e484f; // "VNHO"

/**
 * The VM: UDP/IPv4 frames from 64 source ports, 8 bytes of payload (magic, sequence number), padded to 60 bytes;
 * 16 frames a millisecond or so until `stop` on stdin, then `total N`.
 */
const VM_SCRIPT = `
import socket, struct, sys, threading, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
dst, src = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
stop = threading.Event()
def control():
    for line in sys.stdin:
        if line.strip() == 'stop':
            break
    stop.set()
threading.Thread(target=control, daemon=True).start()
ip_tmpl = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 46, 0, 0, 64, 17, 0, bytes([10, 98, 0, 1]), bytes([10, 98, 0, 2]))
seq = 0
print('ready', flush=True)
while not stop.is_set():
    for _ in range(16):
        udp = struct.pack('!HHHH', 10000 + seq % 64, 9, 26, 0)
        s.send(dst + src + b'\\x08\\x00' + ip_tmpl + udp + struct.pack('!II', ${MAGIC}, seq) + bytes(10))
        seq += 1
    time.sleep(0.001)
print('total', seq, flush=True)
`;

/** The sequence number of one of the VM's frames, or undefined for anything else. */
function seqOfVmFrame(data: Buffer): number | undefined {
  if (data.length < 50 || data.readUInt16BE(12) !== 0x0800 || data[23] !== 17 || data.readUInt32BE(42) !== MAGIC) return undefined;
  return data.readUInt32BE(46);
}

function collect(into: number[]): (frames: readonly Frame[]) => void {
  return (frames) => {
    for (const f of frames) {
      const seq = seqOfVmFrame(f.data);
      if (seq !== undefined) into.push(seq);
    }
  };
}

/** The VM program in the namespace. */
class SendingVm {
  readonly #child: ChildProcess;
  #out = '';

  constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.#out += chunk;
    });
  }

  /** The VM program's pid (a process inside the namespace). */
  get pid(): number {
    return this.#child.pid!;
  }

  async ready(): Promise<void> {
    await waitFor(() => this.#out.includes('ready\n') || this.#child.exitCode !== null, 'the VM program in the namespace', 60_000);
    if (!this.#out.includes('ready\n')) throw new Error(`the VM program exited with ${this.#child.exitCode}`);
  }

  /** Stops sending; the number of frames sent. */
  async stop(): Promise<number> {
    this.#child.stdin!.write('stop\n');
    const m = await waitFor(() => /total (\d+)/.exec(this.#out) ?? (this.#child.exitCode !== null ? [] : null), 'the VM\'s total');
    if (m[1] === undefined) throw new Error(`the VM program exited with ${this.#child.exitCode}`);
    return Number(m[1]);
  }
}

interface Scene {
  h: NetnsHarness;
  ns: string;
  name: string;
  a: TapPort;
  atA: number[];
  vm: SendingVm;
}

/** Port A creates the device, moves it into a new namespace and reads it; the VM there starts sending. */
async function scene(t: TestContext, vnetHdr: boolean): Promise<Scene> {
  const h = await useNetns(t);
  const ns = await h.namespace();
  await h.exec(ns, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'], { allowFailure: true });
  const name = h.linkName();
  const a = TapPort.open({ name, mac: VM_MAC, mtu: MTU, vnetHdr, logger: silentLogger() });
  t.after(() => a.close());
  h.trackHostLink(name);
  assert.equal(a.multiQueue, true, 'a port that creates its device makes it multi-queue');
  await h.moveLink(name, ns);
  await h.linkUp(ns, name);
  const atA: number[] = [];
  a.start(collect(atA));
  const hex = (mac: number): string => formatMac(mac).replaceAll(':', '');
  const vm = new SendingVm(h.spawn(ns, ['python3', '-u', '-c', VM_SCRIPT, name, hex(PEER_MAC), hex(VM_MAC)], { stdin: true }));
  await vm.ready();
  return { h, ns, name, a, atA, vm };
}

/** Frames the kernel dropped on the device's transmit side (a queue full), from `ip -s link`. */
async function kernelDrops(s: Scene): Promise<number> {
  const r = await run(['ip', '-n', s.ns, '-s', '-j', 'link', 'show', 'dev', s.name]);
  const [link] = JSON.parse(r.stdout) as [{ stats64?: { tx?: { dropped?: number } } }];
  return link.stats64?.tx?.dropped ?? 0;
}

/** Frames the device has taken from the VM so far (its TX counter, read in the namespace through a member's /proc/PID/net/dev). */
function framesFromVm(s: Scene): number {
  const line = readFileSync(`/proc/${s.vm.pid}/net/dev`, 'utf8').split('\n').find((l) => l.trim().startsWith(`${s.name}:`));
  if (line === undefined) throw new Error(`${s.name} not in the namespace's /proc/net/dev`);
  return Number(line.split(':')[1]!.trim().split(/\s+/)[9]);
}

/**
 * Keeps this process (port A's reader) busy until the VM has sent `n` more
 * frames, so that A's share of them waits on A's queue: the frames a source
 * has not read yet when it hands off, which its drain must not lose.
 */
function stallUntilVmSent(s: Scene, n: number): void {
  const target = framesFromVm(s) + n;
  const deadline = performance.now() + 10_000;
  while (framesFromVm(s) < target) if (performance.now() > deadline) throw new Error(`the VM did not send ${n} frames`);
}

/** Each of 0..total-1 at exactly one port, in order at each; returns what is missing. */
function checkExactlyOnce(t: TestContext, atA: readonly number[], atB: readonly number[], total: number): number[] {
  const seen = new Uint8Array(total);
  const dup: number[] = [];
  for (const seq of [...atA, ...atB]) {
    assert.ok(seq < total, `sequence number ${seq} beyond the ${total} sent`);
    if (seen[seq]! > 0) dup.push(seq);
    seen[seq] = 1;
  }
  assert.deepEqual(dup.slice(0, 10), [], `${dup.length} frames arrived twice`);
  for (const [port, seqs] of [['A', atA], ['B', atB]] as const) {
    const disorder = seqs.findIndex((v, i) => i > 0 && v < seqs[i - 1]!);
    assert.equal(disorder, -1, `port ${port} got its frames in the order the VM sent them`);
  }
  const missing: number[] = [];
  for (let i = 0; i < total; i++) if (seen[i] === 0) missing.push(i);
  t.diagnostic(`${total} frames sent; ${atA.length} at A, ${atB.length} at B, ${missing.length} missing${missing.length > 0 ? ` (first ${missing.slice(0, 10).join(',')})` : ''}`);
  return missing;
}

for (const vnetHdr of [false, true]) {
  test(`hand-over to a second port in this process ${vnetHdr ? 'with' : 'without'} vnet_hdr: every frame at exactly one port, none lost`, async (t) => {
    const s = await scene(t, vnetHdr);
    await waitFor(() => s.atA.length >= 1000, 'the VM\'s frames at A before the hand-over');

    const b = TapPort.attach({ name: s.name, mac: VM_MAC, mtu: MTU, netns: s.ns, logger: silentLogger() });
    t.after(() => b.close());
    assert.equal(b.acceptsOffload, vnetHdr, 'the attached port takes the device\'s vnet_hdr setting');
    const atB: number[] = [];
    b.start(collect(atB));
    const aAtAttach = s.atA.length;
    await waitFor(() => atB.length >= 300 && s.atA.length >= aAtAttach + 300, 'frames at both ports while both are attached (spread by flow hash)');

    const r = await s.a.handOff();
    const bAtHandOff = atB.length;
    t.diagnostic(`A drained ${r.drained} queued frames at the hand-over; steered: ${r.steered}`);
    assert.equal(r.steered, true, 'eBPF steering is available here (root)');
    await waitFor(() => atB.length >= bAtHandOff + 1000, 'the VM\'s frames at B after the hand-over');
    b.releaseSteering();

    const total = await s.vm.stop();
    await waitFor(() => s.atA.length + atB.length >= total, 'every frame at one port or the other').catch(() => undefined);
    const drops = await kernelDrops(s);
    const missing = checkExactlyOnce(t, s.atA, atB, total);
    t.diagnostic(`kernel tx_dropped (a queue full) ${drops}`);
    // The kernel's count also takes in frames that are not the VM's numbered ones (its own neighbour discovery, say).
    assert.ok(missing.length <= drops, `no frame lost beyond what the kernel counted as dropped for a full queue: ${missing.length} missing, ${drops} dropped`);
  });
}

/** The destination in a second Node process: attaches, prints `attached`, then `R seq,seq,...` per batch; `release` and `close` on stdin. */
const DESTINATION_SCRIPT = `
const [name, mac, mtu, netns] = process.argv.slice(1);
const { TapPort } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/dataplane/tap-port.ts', import.meta.url)))});
const { silentLogger } = await import(${JSON.stringify(fileURLToPath(new URL('../../src/common/logger.ts', import.meta.url)))});
const port = TapPort.attach({ name, mac: Number(mac), mtu: Number(mtu), netns, logger: silentLogger() });
port.start((frames) => {
  const seqs = [];
  for (const f of frames) {
    const d = f.data;
    if (d.length >= 50 && d.readUInt16BE(12) === 0x0800 && d[23] === 17 && d.readUInt32BE(42) === ${MAGIC}) seqs.push(d.readUInt32BE(46));
  }
  if (seqs.length > 0) process.stdout.write('R ' + seqs.join(',') + '\\n');
});
process.stdout.write('attached ' + port.acceptsOffload + '\\n');
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', async (chunk) => {
  buf += chunk;
  for (;;) {
    const i = buf.indexOf('\\n');
    if (i < 0) break;
    const cmd = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (cmd === 'release') { port.releaseSteering(); process.stdout.write('released\\n'); }
    if (cmd === 'close') { await port.close(); process.stdout.write('closed\\n'); process.exit(0); }
  }
});
`;

/** The destination process, as the test sees it. */
class DestinationProcess {
  readonly child: ChildProcess;
  readonly seqs: number[] = [];
  readonly #lines: string[] = [];
  #partial = '';
  #err = '';

  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const lines = (this.#partial + chunk).split('\n');
      this.#partial = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('R ')) for (const v of line.slice(2).split(',')) this.seqs.push(Number(v));
        else this.#lines.push(line);
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.#err += chunk;
    });
  }

  /** Waits for a line starting with `prefix`; returns it. */
  async line(prefix: string, timeoutMs = 30_000): Promise<string> {
    const found = await waitFor(() => this.#lines.find((l) => l.startsWith(prefix)) ?? (this.child.exitCode !== null ? `exited ${this.child.exitCode}` : undefined), `"${prefix}" from the destination process`, timeoutMs);
    if (!found.startsWith(prefix)) throw new Error(`the destination process ${found}: ${this.#err.trim()}`);
    return found;
  }

  command(cmd: string): void {
    this.child.stdin!.write(`${cmd}\n`);
  }
}

test('hand-over to a port in a second process (with vnet_hdr), frames waiting on the source\'s queue: every frame at exactly one port, none lost', async (t) => {
  const s = await scene(t, true);
  await waitFor(() => s.atA.length >= 1000, 'the VM\'s frames at A before the hand-over');

  // The destination daemon: another Node process in the host namespace, attaching inside the VM's.
  const dest = new DestinationProcess(s.h.spawn(undefined, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', DESTINATION_SCRIPT, s.name, String(VM_MAC), String(MTU), s.ns], { stdin: true }));
  assert.equal(await dest.line('attached'), 'attached true', 'the destination took the device\'s vnet_hdr');
  const aAtAttach = s.atA.length;
  await waitFor(() => dest.seqs.length >= 300 && s.atA.length >= aAtAttach + 300, 'frames at both processes while both are attached', 20_000);

  stallUntilVmSent(s, 400);
  const r = await s.a.handOff();
  const bAtHandOff = dest.seqs.length;
  t.diagnostic(`A drained ${r.drained} queued frames at the hand-over; steered: ${r.steered}`);
  assert.ok(r.drained > 0, 'frames were waiting on A\'s queue at the hand-over (and were read, not dropped)');
  await waitFor(() => dest.seqs.length >= bAtHandOff + 1000, 'the VM\'s frames at the destination after the hand-over', 20_000);
  dest.command('release');
  await dest.line('released');

  const total = await s.vm.stop();
  await waitFor(() => s.atA.length + dest.seqs.length >= total, 'every frame at one process or the other').catch(() => undefined);
  const drops = await kernelDrops(s);
  const missing = checkExactlyOnce(t, s.atA, dest.seqs, total);
  t.diagnostic(`kernel tx_dropped (a queue full) ${drops}`);
  // The kernel's counter also counts frames other than the test's (the VM's own IPv6 router solicitations and the like).
  assert.ok(missing.length <= drops, `no frame lost beyond what the kernel counted as dropped for a full queue: ${missing.length} missing, ${drops} dropped`);

  dest.command('close');
  await dest.line('closed');
  if (dest.child.exitCode === null) await once(dest.child, 'exit');
  assert.equal(await s.h.link(s.ns, s.name), undefined, 'the device went with its last queue');
});
