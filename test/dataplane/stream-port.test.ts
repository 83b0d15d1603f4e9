/**
 * The QEMU `-netdev stream` port (src/dataplane/stream-port.ts) over a real
 * Unix socket, with a fake QEMU on the far side that frames as QEMU does
 * (4-byte big-endian length, then the frame): the port compliance suite,
 * then what is particular to a stream port — QEMU restarting (reconnect), a
 * new connection replacing a live one, broken framing, the bound on frames
 * kept before start, the bound on what waits in the socket, the socket's
 * mode and a path taken by something else.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import type { Mac } from '../../src/common/mac.ts';
import { StreamPortError } from '../../src/dataplane/errors.ts';
import { StreamFrameDecoder, streamFrameHeader, QEMU_NET_BUFSIZE } from '../../src/dataplane/stream-frame-codec.ts';
import { StreamPort } from '../../src/dataplane/stream-port.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';
import { portCompliance } from './port-compliance.ts';

const dir = mkdtempSync(join(tmpdir(), 'vnet-stream-port-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

/** A fake QEMU: connects to the port's socket and speaks QEMU's stream framing. */
class FakeQemu {
  readonly socket: net.Socket;
  readonly received: Buffer[] = [];
  readonly #decoder = new StreamFrameDecoder({ maxAcceptBytes: QEMU_NET_BUFSIZE });

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => { for (const f of this.#decoder.push(chunk).frames) this.received.push(Buffer.from(f)); });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<FakeQemu> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path }, () => resolve(new FakeQemu(s)));
      s.once('error', reject);
    });
  }

  send(frames: readonly Buffer[]): Promise<void> {
    const bytes = Buffer.concat(frames.flatMap((f) => [streamFrameHeader(f.length), f]));
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  hangUp(): Promise<void> {
    return new Promise((resolve) => { this.socket.once('close', () => resolve()); this.socket.destroy(); });
  }
}

async function openPort(init: { mac: Mac; mtu: number; reconnectMs?: number; maxPendingFrames?: number; maxQueuedBytes?: number }): Promise<StreamPort> {
  const name = `st${seq++}`;
  return StreamPort.listen({ name, path: join(dir, `${name}.sock`), logger: silentLogger(), ...init });
}

portCompliance('stream (fake QEMU on a Unix socket)', {
  async open({ mac, mtu }) {
    const port = await openPort({ mac, mtu, reconnectMs: 50 });
    const qemu = await FakeQemu.connect(port.path);
    await port.whenConnected();
    return {
      port,
      vm: { send: (frames) => qemu.send(frames), received: () => qemu.received },
      // QEMU gone and not coming back within the port's reconnect window.
      breakDevice: () => qemu.hangUp(),
      cleanup: async () => { qemu.socket.destroy(); await port.close(); },
    };
  },
});

const VM: Mac = 0x02_00_00_78_00_01;
const PEER: Mac = 0x02_00_00_78_00_02;
const toVm = (n: number): { data: Buffer; offload: undefined } => ({ data: testFrame(VM, PEER, n), offload: undefined });

describe('stream port: what is particular to QEMU\'s socket', () => {
  it('QEMU restarting: the port waits, takes the new connection, and frames flow both ways again; no failure', async () => {
    const port = await openPort({ mac: VM, mtu: 1500, reconnectMs: 10_000 });
    const failures: Error[] = [];
    port.onFailure((e) => failures.push(e));
    const got: number[] = [];
    port.start((frames) => { for (const f of frames) got.push(seqOf(f.data)); });
    const first = await FakeQemu.connect(port.path);
    await first.send([testFrame(PEER, VM, 1)]);
    await waitFor(() => got.includes(1), 'frame 1 from the first QEMU');
    await first.hangUp();
    await waitFor(() => !port.connected, 'the port to see the hang-up');
    port.send(toVm(50));
    assert.equal(port.stats.txDropped, 1, 'a frame to a VM with no QEMU is a counted drop');
    const second = await FakeQemu.connect(port.path);
    await port.whenConnected();
    await second.send([testFrame(PEER, VM, 2)]);
    port.send(toVm(51));
    await waitFor(() => got.includes(2) && second.received.length === 1, 'frames both ways with the second QEMU');
    assert.equal(seqOf(second.received[0]!), 51);
    assert.deepEqual(failures, []);
    assert.equal(port.connection.connections, 2);
    second.socket.destroy();
    await port.close();
  });

  it('a new connection replaces a live one: the old one is closed, frames go to the new one', async () => {
    const port = await openPort({ mac: VM, mtu: 1500 });
    port.start(() => undefined);
    const a = await FakeQemu.connect(port.path);
    await port.whenConnected();
    const closed = new Promise<void>((r) => a.socket.once('close', () => r()));
    const b = await FakeQemu.connect(port.path);
    await closed;
    await waitFor(() => port.connection.replaced === 1, 'the replacement counted');
    port.send(toVm(7));
    await waitFor(() => b.received.length === 1, 'the frame at the new QEMU');
    assert.equal(a.received.length, 0);
    b.socket.destroy();
    await port.close();
  });

  it('a length over QEMU\'s limit closes that connection, counted as a framing error; the port lives on for the next one', async () => {
    const port = await openPort({ mac: VM, mtu: 1500 });
    const failures: Error[] = [];
    port.onFailure((e) => failures.push(e));
    const got: number[] = [];
    port.start((frames) => { for (const f of frames) got.push(seqOf(f.data)); });
    const q = await FakeQemu.connect(port.path);
    const closed = new Promise<void>((r) => q.socket.once('close', () => r()));
    q.socket.write(Buffer.concat([streamFrameHeader(60), testFrame(PEER, VM, 3, 60), streamFrameHeader(0xffff_fff0)]));
    await closed;
    assert.deepEqual(got, [3]);
    assert.equal(port.connection.framingErrors, 1);
    assert.ok(port.stats.errors >= 1);
    const again = await FakeQemu.connect(port.path);
    await again.send([testFrame(PEER, VM, 4)]);
    await waitFor(() => got.includes(4), 'frames from the next connection');
    assert.deepEqual(failures, []);
    again.socket.destroy();
    await port.close();
  });

  it('keeps at most maxPendingFrames before start (the socket paused, nothing lost) and hands them over at start', async () => {
    const port = await openPort({ mac: VM, mtu: 1500, maxPendingFrames: 8 });
    const q = await FakeQemu.connect(port.path);
    // 280 KB: several socket reads. The bound is checked per read, so at most one read's frames go past it.
    void q.send(Array.from({ length: 200 }, (_, i) => testFrame(PEER, VM, i, 1400)));
    await waitFor(() => port.stats.rxFrames >= 8, 'the first frames read');
    await new Promise((r) => setImmediate(r));
    assert.ok(port.stats.rxFrames < 200, `reading paused before all 200 (read ${port.stats.rxFrames})`);
    const got: number[] = [];
    port.start((frames) => { for (const f of frames) got.push(seqOf(f.data)); });
    await waitFor(() => got.length === 200, 'all 200 frames after start');
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
    q.socket.destroy();
    await port.close();
  });

  it('drops frames to the VM (counted) once more than maxQueuedBytes wait in the socket', async () => {
    const port = await openPort({ mac: VM, mtu: 1500, maxQueuedBytes: 4096 });
    port.start(() => undefined);
    const q = await FakeQemu.connect(port.path);
    await port.whenConnected();
    q.socket.pause(); // a QEMU that does not read
    for (let i = 0; i < 20_000; i++) port.send({ data: testFrame(VM, PEER, i, 1000), offload: undefined });
    assert.ok(port.stats.txDropped > 0, 'some frames dropped');
    assert.equal(port.stats.txFrames + port.stats.txDropped, 20_000, 'every frame accounted for');
    q.socket.destroy();
    await port.close();
  });

  it('makes its socket owner-only, removes it on close, replaces a stale socket and refuses a path that is not a socket', async () => {
    const port = await openPort({ mac: VM, mtu: 1500 });
    assert.equal(statSync(port.path).mode & 0o777, 0o600);
    const path = port.path;
    await port.close();
    assert.throws(() => statSync(path));
    const stale = net.createServer();
    const stalePath = join(dir, 'stale.sock');
    await new Promise<void>((r) => stale.listen(stalePath, () => r()));
    stale.unref();
    const over = await StreamPort.listen({ name: 'stale', mac: VM, mtu: 1500, path: stalePath, logger: silentLogger() });
    await over.close();
    stale.close();
    const file = join(dir, 'regular');
    writeFileSync(file, 'not a socket');
    await assert.rejects(StreamPort.listen({ name: 'reg', mac: VM, mtu: 1500, path: file, logger: silentLogger() }), (e: unknown) => e instanceof StreamPortError && e.code === 'VNET_ERR_STREAM_PORT');
  });
});
