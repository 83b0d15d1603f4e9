import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { PatternsReport } from '../../src/patterns/report.ts';
import { requireTools, useNetns } from '../helpers/netns.ts';

const child = fileURLToPath(new URL('../../bin/vnet.js', import.meta.url));

describe('Patterns workers in VM network namespaces (root)', () => {
  it('runs one `vnet patterns worker` per namespace over a bridge, as the adaptation benchmark launches them', async (t) => {
    requireTools(['ip']);
    const ns = await useNetns(t);
    const sw = await ns.namespace();
    await ns.exec(sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    await ns.linkUp(sw, 'br0');
    const n = 4;
    const vms: string[] = [];
    for (let i = 0; i < n; i++) {
      const vm = await ns.namespace();
      const [inVm, inSw] = await ns.vethPair({ ns: vm }, { ns: sw });
      await ns.exec(sw, ['ip', 'link', 'set', 'dev', inSw, 'master', 'br0']);
      await ns.addAddress(vm, inVm, `10.77.0.${i + 1}/24`);
      vms.push(vm);
    }
    const peers = vms.map((_, i) => `10.77.0.${i + 1}:7100`).join(',');
    const results = await Promise.all(
      vms.map((vm, i) =>
        ns.exec(vm, [process.execPath, child, 'patterns', 'worker', '--index', String(i), '--peers', peers, '--pattern', 'ring', '--size', '64KiB', '--rounds', '20', '--connect-timeout', '20000', '--json'], {
          timeoutMs: 60_000,
        }),
      ),
    );
    for (const [i, r] of results.entries()) {
      const report = JSON.parse(r.stdout) as PatternsReport;
      assert.equal(report.index, i);
      assert.equal(report.sentMessages, 2 * 20);
      assert.equal(report.receivedMessages, 2 * 20);
      assert.equal(report.receivedBytes, 2 * 20 * 65_536);
      assert.equal(report.roundMs.length, 20);
    }
  });
});
