import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { localMac } from '../../src/common/mac.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { runL2Patterns } from '../../src/patterns/l2-rounds.ts';
import { patternEdges } from '../../src/topology/patterns.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 1500 };

describe('L2 Patterns through vnet daemons (memory transport)', { timeout: 60_000 }, () => {
  it('completes ring rounds between 6 VMs on a hub and two spokes, and the daemons count the pattern\'s pairs', async () => {
    const net = new MemoryNetwork();
    const transport = (host: string): MemoryTransport => new MemoryTransport({ logger }, { localHost: host, network: net, ...LINK });
    const listen = { host: '127.0.0.1', port: 0 };
    const hub = await Daemon.start({ logger, transport: transport('hub') }, { hostId: 'hub', role: 'hub', listen });
    const a = await Daemon.start({ logger, transport: transport('hA') }, { hostId: 'hA', role: 'spoke', listen, hub: { ...hub.listenAddress!, id: 'hub' } });
    const b = await Daemon.start({ logger, transport: transport('hB') }, { hostId: 'hB', role: 'spoke', listen, hub: { ...hub.listenAddress!, id: 'hub' } });
    try {
      await waitFor(() => hub.facts().links.filter((l) => l.state === 'up').length === 2 && a.facts().links.some((l) => l.state === 'up') && b.facts().links.some((l) => l.state === 'up'), 'spokes linked');
      const daemons = [hub, a, b];
      const vms = Array.from({ length: 6 }, (_, i) => ({ name: `vm${i}`, port: new MemoryPort({ name: `vm${i}`, mac: localMac(0x100 + i) }) }));
      vms.forEach((vm, i) => daemons[i % 3]!.addPort(vm.port));
      const r = await runL2Patterns({ logger }, { vms, pattern: 'ring', messageBytes: 8192, rounds: 5, roundTimeoutMs: 5_000 });
      const expected = 2 * 6 * r.framesPerMessage * 5;
      assert.equal(r.lostFrames, 0);
      assert.equal(r.receivedFrames, expected);
      const pairs = new Set(patternEdges('ring', 6).flatMap(([x, y]) => [`${x}>${y}`, `${y}>${x}`]));
      const counted = new Set<string>();
      for (const d of daemons) {
        for (const e of d.counters.peek().entries) {
          const s = vms.findIndex((v) => v.port.mac === e.src);
          const t = vms.findIndex((v) => v.port.mac === e.dst);
          if (s >= 0 && t >= 0 && e.frames >= r.framesPerMessage * 5) counted.add(`${s}>${t}`);
        }
      }
      assert.deepEqual([...counted].sort(), [...pairs].sort());
    } finally {
      await Promise.all([a.close(), b.close(), hub.close()]);
    }
  });
});
