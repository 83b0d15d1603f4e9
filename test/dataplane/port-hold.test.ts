/**
 * A VM's frames around a migration's cutover, through real daemons (a hub
 * and two spokes over the in-memory transport, memory ports): the source
 * holds the paused VM's frames, the destination's port starts held, the
 * source flushes what it held to the destination over their link, relays
 * what still arrives, and the destination announces the VM.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, parseMac } from '../../src/common/mac.ts';
import { announceFrames, ipv4Number } from '../../src/dataplane/announce.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { DELIVERY_LOG_LIMIT, DELIVERY_LOG_MS, PortOutlet, reclaimedFrames } from '../../src/dataplane/port-outlet.ts';
import { testFrame, seqOf } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

describe('a port outlet', () => {
  it('delivers straight through until held, then queues copies in order, bounded, and releases them oldest first', () => {
    const port = new MemoryPort({ name: 'p', mac: parseMac('02:00:00:00:00:01') });
    const got: number[] = [];
    port.onDeliver((f) => got.push(seqOf(Buffer.from(f))));
    port.start(() => undefined);
    const out = new PortOutlet(port, { limit: 3 });
    const mac = parseMac('02:00:00:00:00:01');
    const other = parseMac('02:00:00:00:00:02');
    out.send({ data: testFrame(mac, other, 1), offload: undefined });
    assert.deepEqual(got, [1]);
    out.hold();
    const reused = testFrame(mac, other, 2);
    out.send({ data: reused, offload: undefined });
    reused.writeUInt32BE(99, 14); // the caller reuses its buffer: the queued copy keeps 2
    for (const s of [3, 4, 5]) out.send({ data: testFrame(mac, other, s), offload: undefined });
    assert.deepEqual(got, [1], 'nothing delivered while held');
    assert.deepEqual(out.stats, { held: 3, flushed: 0, lost: 1, queued: 3, reclaimed: 0 });
    const released: number[] = [];
    const stats = out.release((f) => { released.push(seqOf(f.data)); return f.data.readUInt32BE(14) !== 4; });
    assert.deepEqual(released, [2, 3, 4]);
    assert.deepEqual(stats, { held: 3, flushed: 2, lost: 2, queued: 0, reclaimed: 0 });
    out.send({ data: testFrame(mac, other, 6), offload: undefined });
    assert.deepEqual(got, [1, 6], 'after the release frames flow again');
  });
});

describe('a watched outlet (a QEMU guest that stops on its own)', () => {
  const mac = parseMac('02:00:00:00:00:01');
  const other = parseMac('02:00:00:00:00:02');
  const setup = (): { out: PortOutlet; got: number[]; at: { ms: number } } => {
    const port = new MemoryPort({ name: 'p', mac });
    const got: number[] = [];
    port.onDeliver((f) => got.push(seqOf(Buffer.from(f))));
    port.start(() => undefined);
    const at = { ms: 1000 };
    const out = new PortOutlet(port);
    out.watchDeliveries(() => at.ms);
    return { out, got, at };
  };
  const send = (out: PortOutlet, seq: number): void => out.send({ data: testFrame(mac, other, seq), offload: undefined });

  it('a commit\'s release sends what was delivered at or after the STOP first, then the held frames; nothing from before', () => {
    const { out, got, at } = setup();
    for (const [seq, ms] of [[1, 1000], [2, 1004], [3, 1005], [4, 1006]] as const) {
      at.ms = ms;
      const reused = testFrame(mac, other, seq);
      out.send({ data: reused, offload: undefined });
      reused.writeUInt32BE(99, 14); // the caller reuses its buffer: the log keeps its own copy
    }
    assert.deepEqual(got, [1, 2, 3, 4], 'delivered as usual while watched');
    out.hold();
    send(out, 5);
    send(out, 6);
    const sent: number[] = [];
    const stats = out.release((f) => { sent.push(seqOf(f.data)); return true; }, undefined, { sinceMs: 1004.6 });
    assert.deepEqual(sent, [3, 4, 5, 6], 'the frames delivered from 1005 ms on (the STOP at 1004.6), then the held ones, in order');
    assert.deepEqual(stats, { held: 4, flushed: 4, lost: 0, queued: 0, reclaimed: 2 });
    assert.equal(out.watched, false, 'the release ends the watch');
    send(out, 7);
    assert.deepEqual(got, [1, 2, 3, 4, 7]);
  });

  it('an abort\'s release (to the port) reclaims nothing: the guest that runs on takes them itself', () => {
    const { out, got } = setup();
    send(out, 1);
    out.hold();
    send(out, 2);
    const stats = out.release((f) => { got.push(seqOf(f.data)); return true; });
    assert.deepEqual(got, [1, 2]);
    assert.equal(stats.reclaimed, 0);
    assert.equal(out.watched, false);
  });

  it('keeps only the last frames and none older than its window; an unwatched outlet logs nothing', () => {
    const { out, at } = setup();
    for (let i = 0; i < DELIVERY_LOG_LIMIT + 10; i++) send(out, i);
    out.hold();
    let sent: number[] = [];
    let stats = out.release((f) => { sent.push(seqOf(f.data)); return true; }, undefined, { sinceMs: 0 });
    assert.equal(stats.reclaimed, DELIVERY_LOG_LIMIT, 'bounded');
    assert.equal(sent[0], 10, 'the oldest went first');
    out.watchDeliveries(() => at.ms);
    send(out, 1);
    at.ms += DELIVERY_LOG_MS + 1;
    send(out, 2);
    out.hold();
    sent = [];
    stats = out.release((f) => { sent.push(seqOf(f.data)); return true; }, undefined, { sinceMs: 0 });
    assert.deepEqual(sent, [2], 'a frame older than the window is gone');
    send(out, 3);
    out.hold();
    stats = out.release(() => true, undefined, { sinceMs: 0 });
    assert.equal(stats.reclaimed, DELIVERY_LOG_LIMIT + 1, 'nothing more: unwatched after the release');
  });

  it('keeps the last frames in order however often it wraps, and drops aged ones from anywhere in the ring', () => {
    const { out, at } = setup();
    const total = 3 * DELIVERY_LOG_LIMIT + 7;
    for (let i = 0; i < total; i++) send(out, i);
    // Half a window later the next frames come; then the older ones age out, the newer stay.
    at.ms += DELIVERY_LOG_MS / 2;
    for (let i = total; i < total + 5; i++) send(out, i);
    at.ms += DELIVERY_LOG_MS / 2 + 1;
    send(out, total + 5);
    out.hold();
    const sent: number[] = [];
    out.release((f) => { sent.push(seqOf(f.data)); return true; }, undefined, { sinceMs: 0 });
    assert.deepEqual(sent, [total, total + 1, total + 2, total + 3, total + 4, total + 5]);
  });
});

describe('what a release reclaims (reclaimedFrames)', () => {
  const mac = parseMac('02:00:00:00:00:01');
  const other = parseMac('02:00:00:00:00:02');
  const log = [1, 2, 3, 4, 5].map((seq) => ({ frame: { data: testFrame(mac, other, seq), offload: undefined }, atMs: 100 + seq }));
  const seqs = (frames: readonly { data: Uint8Array }[]): number[] => frames.map((f) => seqOf(Buffer.from(f.data)));

  it('the union of the deliveries since the STOP and the unread ones when those are the log\'s last', () => {
    assert.deepEqual(seqs(reclaimedFrames(log, { sinceMs: 104 })), [4, 5], 'since the STOP only');
    assert.deepEqual(seqs(reclaimedFrames(log, { sinceMs: 105, unread: [testFrame(mac, other, 3), testFrame(mac, other, 4), testFrame(mac, other, 5)] })), [3, 4, 5], 'more unread than since the STOP (QEMU stopped reading before its STOP)');
    assert.deepEqual(seqs(reclaimedFrames(log, { sinceMs: 102, unread: [testFrame(mac, other, 5)] })), [2, 3, 4, 5], 'more since the STOP than unread (it read some after)');
    assert.deepEqual(seqs(reclaimedFrames(log, { unread: [] })), [], 'nothing unread, no STOP: nothing');
    assert.deepEqual(seqs(reclaimedFrames(log, { sinceMs: 200, unread: [] })), [], 'a STOP after every delivery: nothing');
  });

  it('unread frames that are not the log\'s last go alone: no frame is sent twice', () => {
    const stray = testFrame(other, mac, 9);
    assert.deepEqual(seqs(reclaimedFrames(log, { sinceMs: 102, unread: [testFrame(mac, other, 5), stray] })), [5, 9]);
    assert.deepEqual(seqs(reclaimedFrames([], { sinceMs: 0, unread: [stray] })), [9], 'more unread than logged');
  });
});

describe('a destination\'s release', () => {
  it('delivers what came from the migration\'s source first, then the rest, each in arrival order', () => {
    const mac = parseMac('02:00:00:00:00:01');
    const other = parseMac('02:00:00:00:00:02');
    const port = new MemoryPort({ name: 'p', mac });
    port.start(() => undefined);
    const out = new PortOutlet(port, { held: true });
    const SOURCE = 7;
    const HUB = 3;
    // The hub's frames (newer: the rules already point here) arrive before the source's flush (older).
    for (const [seq, from] of [[10, HUB], [11, HUB], [1, SOURCE], [2, SOURCE], [12, HUB], [3, SOURCE]] as const) out.send({ data: testFrame(mac, other, seq), offload: undefined }, from);
    const order: number[] = [];
    out.release((f) => { order.push(seqOf(f.data)); return true; }, SOURCE);
    assert.deepEqual(order, [1, 2, 3, 10, 11, 12]);
  });
});

describe('announcing a VM', () => {
  it('a RARP from the VM (QEMU announce-self format) and a gratuitous ARP for its IPv4 address, both broadcast', () => {
    const mac = parseMac('02:00:00:00:00:2a');
    const [rarp, garp] = announceFrames(mac, '10.1.2.3/24');
    assert.equal(rarp!.data.readUIntBE(0, 6), BROADCAST_MAC);
    assert.equal(rarp!.data.readUIntBE(6, 6), mac);
    assert.equal(rarp!.data.readUInt16BE(12), 0x8035);
    assert.equal(rarp!.data.readUInt16BE(20), 3, 'request reverse');
    assert.equal(rarp!.data.readUIntBE(22, 6), mac);
    assert.equal(rarp!.data.readUIntBE(32, 6), mac);
    assert.equal(garp!.data.readUInt16BE(12), 0x0806);
    assert.equal(garp!.data.readUInt16BE(20), 1, 'ARP request');
    assert.equal(garp!.data.readUInt32BE(28), ipv4Number('10.1.2.3'));
    assert.equal(garp!.data.readUInt32BE(38), ipv4Number('10.1.2.3'), 'sender and target IP are the VM\'s own');
    assert.equal(announceFrames(mac, undefined).length, 1, 'no IPv4 known: the RARP alone');
    assert.equal(ipv4Number('10.1.2.300'), undefined);
  });
});

describe('the cutover data path across three daemons', { timeout: 30_000 }, () => {
  const net = new MemoryNetwork();
  const transport = (host: string): MemoryTransport => new MemoryTransport({ logger }, { localHost: host, network: net, keepaliveMs: 100, deadMs: 1500 });
  const listen = { host: '127.0.0.1', port: 0 };
  let hub: Daemon;
  let src: Daemon;
  let dst: Daemon;
  const mover = parseMac('02:00:00:00:00:21');
  const peer = parseMac('02:00:00:00:00:22');
  const atSrc = new MemoryPort({ name: 'vm1', mac: mover });
  const atDst = new MemoryPort({ name: 'vm1', mac: mover });
  const peerPort = new MemoryPort({ name: 'vm2', mac: peer });
  const gotSrc: number[] = [];
  const gotDst: Buffer[] = [];
  const gotPeer: Buffer[] = [];
  atSrc.onDeliver((f) => gotSrc.push(seqOf(Buffer.from(f))));
  atDst.onDeliver((f) => gotDst.push(Buffer.from(f)));
  peerPort.onDeliver((f) => gotPeer.push(Buffer.from(f)));

  before(async () => {
    hub = await Daemon.start({ logger, transport: transport('hub') }, { hostId: 'hub', role: 'hub', listen });
    const hubAt = { ...hub.listenAddress!, id: 'hub' };
    src = await Daemon.start({ logger, transport: transport('hA') }, { hostId: 'hA', role: 'spoke', listen, hub: hubAt });
    dst = await Daemon.start({ logger, transport: transport('hB') }, { hostId: 'hB', role: 'spoke', listen, hub: hubAt });
    src.addPort(atSrc, '10.0.0.21');
    hub.addPort(peerPort, '10.0.0.22');
    // The migration's link between source and destination.
    src.applyFastPathLinks(1, [{ peer: 'hB', address: dst.listenAddress!, reason: 'migration' }]);
    dst.applyFastPathLinks(1, [{ peer: 'hA', address: src.listenAddress!, reason: 'migration' }]);
    await waitFor(() => src.link('hB') !== undefined && dst.link('hA') !== undefined && src.link('hub') !== undefined && dst.link('hub') !== undefined, 'backbone and migration link up');
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close(), hub?.close()]);
  });

  it('held at the source, queued at the destination, flushed in order, relayed, announced: nothing lost', async () => {
    // The peer (behind the hub) talks to the VM on the source; the hub learns where it is.
    atSrc.transmit(testFrame(peer, mover, 0));
    await waitFor(() => gotPeer.length === 1, 'the VM heard at the peer');
    peerPort.transmit(testFrame(mover, peer, 1));
    await waitFor(() => gotSrc.length === 1, 'the peer heard at the source');

    // Pause: the source holds the VM's port; the destination gets the VM's port, held.
    src.holdPort('vm1');
    dst.addPort(atDst, '10.0.0.21', { held: true });
    for (let s = 2; s < 12; s++) peerPort.transmit(testFrame(mover, peer, s));
    await waitFor(() => src.holdStats('vm1')!.held === 10, 'ten frames held at the source');
    assert.deepEqual(gotSrc, [1], 'the paused VM got nothing');

    // Cutover: every daemon's rules point at the destination (the source's over the migration link: the relay).
    hub.applyRules(1, [{ id: 'vm1', priority: 100, src: 'any', dst: '02:00:00:00:00:21', action: { link: 'hB' } }]);
    src.applyRules(1, [{ id: 'vm1', priority: 200, src: 'any', dst: '02:00:00:00:00:21', action: { link: 'hB' } }]);
    // Commit: the source flushes to the destination and drops the port; later frames that reach the source are relayed.
    const flushed = src.releasePort('vm1', { link: 'hB' });
    assert.deepEqual(flushed, { held: 10, flushed: 10, lost: 0, queued: 0, reclaimed: 0 });
    await src.removePort('vm1', 'migrated');
    await waitFor(() => dst.holdStats('vm1')!.held === 10, 'the flushed frames queued at the not-yet-resumed destination');
    // A straggler: the hub forwards one frame to the source by an old rule; the source relays it.
    hub.applyRules(2, [{ id: 'vm1', priority: 100, src: 'any', dst: '02:00:00:00:00:21', action: { link: 'hA' } }]);
    peerPort.transmit(testFrame(mover, peer, 12));
    await waitFor(() => src.relayedFrames(mover) === 1, 'the straggler relayed by the source');
    hub.applyRules(3, [{ id: 'vm1', priority: 100, src: 'any', dst: '02:00:00:00:00:21', action: { link: 'hB' } }]);
    peerPort.transmit(testFrame(mover, peer, 13));
    await waitFor(() => dst.holdStats('vm1')!.held === 12, 'the straggler and a new frame queued at the destination');

    // Resume at the destination: its queue goes to the VM in order, then frames flow; the VM is announced.
    const released = dst.releasePort('vm1', 'port');
    assert.deepEqual(released, { held: 12, flushed: 12, lost: 0, queued: 0, reclaimed: 0 });
    assert.deepEqual(gotDst.map(seqOf), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], 'every frame, in order, exactly once');
    gotPeer.length = 0;
    assert.equal(dst.announce('vm1'), 2);
    await waitFor(() => gotPeer.filter((f) => f.readUIntBE(6, 6) === mover).length === 2, 'the RARP and the gratuitous ARP reach the peer');
    peerPort.transmit(testFrame(mover, peer, 14));
    await waitFor(() => gotDst.length === 13, 'traffic flows to the resumed VM');
    assert.equal(seqOf(gotDst[12]!), 14);
    atDst.transmit(testFrame(peer, mover, 15));
    await waitFor(() => gotPeer.some((f) => f.readUIntBE(6, 6) === mover && f.readUInt16BE(12) === 0x88b5), 'the resumed VM is heard');
  });

  it('holding or releasing a port that is not there is a typed error', () => {
    assert.throws(() => src.holdPort('nope'), { code: 'VNET_ERR_UNKNOWN_PORT' });
    assert.throws(() => src.releasePort('nope', 'port'), { code: 'VNET_ERR_UNKNOWN_PORT' });
    assert.equal(src.holdStats('nope'), undefined);
  });
});
