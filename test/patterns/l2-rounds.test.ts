import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { BROADCAST_MAC, dstMacOf, localMac, srcMacOf } from '../../src/common/mac.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { runL2Patterns } from '../../src/patterns/l2-rounds.ts';
import { PATTERN_KINDS, patternEdges } from '../../src/topology/patterns.ts';

const logger = silentLogger();

/** Memory ports joined by a minimal switch: unicast to the port with that MAC, broadcast (or `flood`) to all others; `drop` filters. */
function fabric(n: number, opts: { flood?: boolean; drop?: (src: number, dst: number) => boolean } = {}): { vms: { name: string; port: MemoryPort }[] } {
  const ports = Array.from({ length: n }, (_, i) => new MemoryPort({ name: `vm${i}`, mac: localMac(i + 1) }));
  const byMac = new Map(ports.map((p) => [p.mac, p]));
  for (const p of ports) {
    p.start((frames) => {
      for (const f of frames) {
        const dst = dstMacOf(f.data);
        if (opts.drop?.(srcMacOf(f.data), dst)) continue;
        const to = dst === BROADCAST_MAC || opts.flood ? ports.filter((q) => q !== p) : [byMac.get(dst)].filter((q) => q !== undefined);
        for (const q of to) q.send({ data: Buffer.from(f.data), offload: undefined });
      }
    });
  }
  return { vms: ports.map((port) => ({ name: port.name, port })) };
}

describe('Patterns as L2 frames on memory ports', () => {
  it('completes every pattern on 8 VMs with every frame of every round received', async () => {
    for (const pattern of PATTERN_KINDS) {
      const { vms } = fabric(8);
      const rounds = 5;
      const r = await runL2Patterns({ logger }, { vms, pattern, messageBytes: 16 * 1024, rounds });
      const framesPerMessage = Math.ceil((16 * 1024) / (1514 - 26));
      const expected = 2 * patternEdges(pattern, 8).length * framesPerMessage * rounds;
      assert.equal(r.framesPerMessage, framesPerMessage);
      assert.equal(r.sentFrames, expected, pattern);
      assert.equal(r.receivedFrames, expected, pattern);
      assert.equal(r.lostFrames, 0, pattern);
      assert.equal(r.incompleteRounds, 0, pattern);
      assert.equal(r.roundMs.length, rounds);
    }
  });

  it('ignores copies flooded to VMs they are not addressed to', async () => {
    const { vms } = fabric(6, { flood: true });
    const r = await runL2Patterns({ logger }, { vms, pattern: 'ring', messageBytes: 3000, rounds: 3 });
    assert.equal(r.receivedFrames, 2 * 6 * 3 * 3);
    assert.equal(r.ignoredFrames, 4 * 2 * 6 * 3 * 3); // each frame also reaches the 4 VMs it is not for
  });

  it('ends a round whose frames are lost at its timeout and counts what was lost', async () => {
    const macs = [localMac(1), localMac(2)];
    const { vms } = fabric(4, { drop: (src, dst) => src === macs[0] && dst === macs[1] });
    const r = await runL2Patterns({ logger }, { vms, pattern: 'ring', messageBytes: 3000, rounds: 2, roundTimeoutMs: 100 });
    // Both rounds end (the run resolves) although VM 1 never gets VM 0's message, and each is reported incomplete.
    // Round times are not asserted: a timer may fire a fraction of a millisecond early, and a loaded machine is late.
    assert.equal(r.incompleteRounds, 2);
    assert.equal(r.roundMs.length, 2);
    assert.equal(r.lostFrames, 2 * 3); // 3 frames per message from VM 0 to VM 1, per round
  });

  it('refuses a pattern undefined for the VM count', async () => {
    const { vms } = fabric(7);
    await assert.rejects(runL2Patterns({ logger }, { vms, pattern: 'mesh', messageBytes: 100, rounds: 1 }), { code: 'VNET_ERR_PATTERNS_CONFIG' });
  });
});
