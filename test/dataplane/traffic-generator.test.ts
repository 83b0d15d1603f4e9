/**
 * The Patterns traffic generator on memory ports joined by a toy switch (no
 * daemon): per-flow sequence numbers, frames lost as gaps behind a later
 * frame, late and duplicate frames, and a VM that pauses, moves to a new
 * port and resumes there without its flows losing a frame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { BROADCAST_MAC, dstMacOf, parseMac, type Mac } from '../../src/common/mac.ts';
import type { Frame } from '../../src/common/frame.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { PatternTraffic } from '../../src/dataplane/traffic-generator.ts';

const A = parseMac('02:00:00:00:00:0a');
const B = parseMac('02:00:00:00:00:0b');

/** Memory ports wired by destination MAC; `filter` sees every unicast frame and may drop it (false) or hold it back ('hold'). */
class ToySwitch {
  readonly #ports = new Map<Mac, MemoryPort>();
  readonly held: Buffer[] = [];
  filter: (frame: Buffer) => boolean | 'hold' = () => true;

  plug(port: MemoryPort): void {
    this.#ports.set(port.mac, port);
    try {
      port.start((frames) => this.#forward(port, frames));
    } catch {
      // Already started (a port plugged again after a move back).
    }
  }

  deliver(frame: Buffer): void {
    this.#ports.get(dstMacOf(frame))?.send({ data: frame, offload: undefined });
  }

  #forward(from: MemoryPort, frames: readonly Frame[]): void {
    for (const f of frames) {
      const dst = dstMacOf(f.data);
      if (dst === BROADCAST_MAC) {
        for (const p of this.#ports.values()) if (p !== from) p.send(f);
        continue;
      }
      const verdict = this.filter(f.data);
      if (verdict === 'hold') this.held.push(f.data);
      else if (verdict) this.deliver(f.data);
    }
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function setup(): Promise<{ clock: ManualClock; sw: ToySwitch; a: MemoryPort; b: MemoryPort; traffic: PatternTraffic }> {
  const clock = new ManualClock();
  const sw = new ToySwitch();
  const a = new MemoryPort({ name: 'a', mac: A });
  const b = new MemoryPort({ name: 'b', mac: B });
  sw.plug(a);
  sw.plug(b);
  // 100 frames of 1000 bytes a second per direction, a tick every 20 ms: two frames a tick each way.
  const traffic = new PatternTraffic({ clock }, { vms: [{ name: 'a', port: a }, { name: 'b', port: b }], edges: [[0, 1]], bytesPerSecond: 100_000, frameBytes: 1000 });
  traffic.start();
  await turn();
  return { clock, sw, a, b, traffic };
}

async function run(clock: ManualClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 20) {
    clock.advance(20);
    await turn();
  }
}

test('every frame sent arrives: nothing lost, late or duplicated', async () => {
  const { clock, traffic } = await setup();
  await run(clock, 1000);
  const s = traffic.stats;
  assert.equal(s.sentFrames, 200, 'a hundred frames a second each way');
  assert.equal(s.receivedFrames, s.sentFrames + 2, 'and the broadcast each VM sent first');
  assert.equal(s.lostFrames, 0);
  assert.equal(s.lateFrames, 0);
  assert.equal(s.duplicateFrames, 0);
  traffic.stop();
});

test('a dropped frame counts lost once a later frame of its flow arrives; a late one is taken back; a repeat is a duplicate', async () => {
  const { clock, sw, traffic } = await setup();
  let n = 0;
  sw.filter = (f) => {
    if (dstMacOf(f) !== B) return true;
    n++;
    if (n === 3 || n === 4) return false; // two frames a → b dropped
    if (n === 7) return 'hold'; // one held back, delivered later
    return true;
  };
  await run(clock, 100); // 10 frames each way
  assert.equal(traffic.stats.lostFrames, 3, 'frames 2 and 3 of a → b lost, and frame 6 missing behind 7');
  sw.deliver(sw.held.shift()!);
  assert.equal(traffic.stats.lostFrames, 2, 'frame 6 arrived after all');
  assert.equal(traffic.stats.lateFrames, 1);
  sw.filter = (f) => {
    if (dstMacOf(f) === B) sw.deliver(f); // every frame a → b twice
    return true;
  };
  await run(clock, 20);
  assert.equal(traffic.stats.duplicateFrames, 2);
  assert.equal(traffic.stats.lostFrames, 2);
  traffic.stop();
});

test('a VM paused, moved to a new port and resumed keeps its flows whole; the new port counts from when it exists', async () => {
  const { clock, sw, b, traffic } = await setup();
  await run(clock, 100);
  // Migration: the guest pauses, frames to it are held (here: by the switch), a new port appears at the destination.
  traffic.pause('b');
  sw.filter = (f) => (dstMacOf(f) === B ? 'hold' : true);
  const sentByB = traffic.stats.sentFrames;
  await run(clock, 100);
  const b2 = new MemoryPort({ name: 'b', mac: B });
  traffic.receiveOn(b2);
  sw.plug(b2);
  await b.close();
  const heldCount = sw.held.length;
  assert.ok(heldCount > 0, 'a kept sending to b while it was paused');
  assert.equal(traffic.stats.sentFrames - sentByB, heldCount, 'and b sent nothing');
  // Cutover: the held frames are released to the new port, in order, then the VM resumes there.
  for (const f of sw.held.splice(0)) sw.deliver(f);
  sw.filter = () => true;
  assert.equal(b2.stats.txFrames, heldCount, 'held frames delivered at the new port');
  traffic.movePort('b', b2);
  traffic.resume('b');
  assert.equal(traffic.portOf('b'), b2);
  const rxBefore = b2.stats.rxFrames;
  await run(clock, 200);
  assert.ok(b2.stats.rxFrames > rxBefore, 'b sends from its new port');
  assert.ok(b2.stats.txFrames > heldCount, 'and receives there');
  assert.equal(traffic.stats.lostFrames, 0);
  assert.equal(traffic.stats.receivedFrames, traffic.stats.sentFrames + 2);
  traffic.stop();
});

test('a frame the closed port refuses is not sent (its number is used again); frames to a closed port are lost', async () => {
  const { clock, sw, b, traffic } = await setup();
  await run(clock, 100);
  await b.close();
  const sent = traffic.stats.sentFrames;
  await run(clock, 100);
  assert.equal(traffic.stats.sentFrames - sent, 10, 'only a → b went out (and was dropped at the closed port)');
  const b2 = new MemoryPort({ name: 'b', mac: B });
  sw.plug(b2);
  traffic.movePort('b', b2);
  await run(clock, 100);
  assert.equal(traffic.stats.lostFrames, 10, 'the ten frames a → b dropped at the closed port, and no gap in b → a');
  assert.deepEqual(traffic.lossByFlow(), [{ src: A, dst: B, lost: 10 }]);
  assert.equal(traffic.portOf('b'), b2);
  assert.throws(() => traffic.pause('nobody'), RangeError);
  traffic.stop();
});
