/**
 * Two TAP ports in two namespaces joined by a relay in Node (what a daemon
 * does between two local VMs): every batch read from one port is written to
 * the other with `sendBatch`. A TCP stream crosses it intact whether GSO
 * super-frames pass through as they are (vnet_hdr on both sides) or are
 * segmented in software because the receiving port has no vnet_hdr — in which
 * case the receiving kernel verifies every checksum offload.ts computed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { silentLogger } from '../../src/common/logger.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { requireTools, useNetns, waitFor } from '../helpers/netns.ts';

requireTools(['ip']);

const BYTES = 8 * 1024 * 1024;

/** The same deterministic bytes the client script generates. */
function streamBytes(): Buffer {
  const b = Buffer.alloc(BYTES);
  for (let i = 0; i < BYTES; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
  return b;
}

for (const [vnetA, vnetB] of [[true, true], [true, false], [false, true], [false, false]] as const) {
  test(`a TCP stream crosses a Node relay between TAP ports intact (client vnet_hdr ${vnetA ? 'on' : 'off'}, server vnet_hdr ${vnetB ? 'on' : 'off'})`, async (t) => {
    const h = await useNetns(t);
    const [nsA, nsB] = [await h.namespace(), await h.namespace()];
    const ports: TapPort[] = [];
    for (const [ns, vnetHdr, ip, mac] of [[nsA, vnetA, '10.98.0.1', 0x02_00_00_98_00_01], [nsB, vnetB, '10.98.0.2', 0x02_00_00_98_00_02]] as const) {
      const name = h.linkName();
      const port = TapPort.open({ name, mac, mtu: 1500, vnetHdr, logger: silentLogger() });
      t.after(() => port.close());
      h.trackHostLink(name);
      await h.moveLink(name, ns);
      await h.addAddress(ns, name, `${ip}/24`);
      await h.linkUp(ns, name);
      ports.push(port);
    }
    const [pA, pB] = ports as [TapPort, TapPort];
    let superFrames = 0;
    pA.start((frames) => {
      for (const f of frames) if (f.offload !== undefined && f.data.length > 1514) superFrames++;
      pB.sendBatch(frames);
    });
    pB.start((frames) => pA.sendBatch(frames));

    const server = h.spawn(nsB, [process.execPath, '-e', `
      const hash = require('crypto').createHash('sha256');
      let n = 0;
      const srv = require('net').createServer((c) => {
        c.on('data', (d) => { n += d.length; hash.update(d); });
        c.on('end', () => { process.stdout.write('done ' + n + ' ' + hash.digest('hex') + '\\n'); process.exit(0); });
      });
      srv.listen(5202, '10.98.0.2', () => process.stdout.write('ready\\n'));
      setTimeout(() => process.exit(3), 30000).unref();`]);
    let out = '';
    server.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor(() => out.includes('ready'), 'the TCP server in namespace B', 60_000);
    const started = performance.now();
    const client = h.spawn(nsA, [process.execPath, '-e', `
      const b = Buffer.alloc(${BYTES});
      for (let i = 0; i < ${BYTES}; i++) b[i] = (i * 7 + (i >> 10)) & 0xff;
      const s = require('net').connect(5202, '10.98.0.2', () => s.end(b));
      s.on('error', (e) => { console.error(e.message); process.exit(2); });`]);
    await waitFor(() => out.includes('done'), `the stream to finish (server said ${JSON.stringify(out)})`, 30_000);
    const ms = performance.now() - started;
    if (client.exitCode === null) await once(client, 'exit');
    const [, n, digest] = out.trim().split('\n').at(-1)!.split(' ');
    assert.equal(Number(n), BYTES, 'every byte arrived');
    assert.equal(digest, createHash('sha256').update(streamBytes()).digest('hex'), 'bytes intact');
    if (vnetA) assert.ok(superFrames > 0, 'the client side produced GSO super-frames');
    else assert.equal(superFrames, 0);
    assert.equal(pA.stats.errors + pB.stats.errors, 0);
    t.diagnostic(`${(BYTES / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms including the client's start (throughput: bench/tap-relay), ${superFrames} super-frames, A rx ${pA.stats.rxFrames} frames, B tx ${pB.stats.txFrames} frames, drops ${pA.stats.txDropped + pB.stats.txDropped}`);
  });
}
