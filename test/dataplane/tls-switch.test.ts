/**
 * The switch from TLS to native records (src/dataplane/tls-switch.ts) over
 * loopback: both ends offering records switch to vnet-records/2 (and the
 * link carries frames both ways, across key updates counted on the wire with
 * a tiny threshold); a peer offering only /1 (a daemon from before rekeying)
 * gets /1 from either side, and no key update is sent even by the side with
 * a tiny threshold; bad versions or thresholds are a ConfigError; one end not
 * offering records keeps plain TLS; a peer that breaks
 * the switch — bytes after SWITCH, a wrong ACK, bytes after ACK — is
 * refused with VNET_ERR_RECORD_SWITCH and no link is opened.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect, createServer as tlsServer, type TLSSocket } from 'node:tls';
import { silentLogger } from '../../src/common/logger.ts';
import type { Frame } from '../../src/common/frame.ts';
import { createCa, issueHostCertificate, type PemPair } from '../../src/pki/certs.ts';
import type { Link } from '../../src/dataplane/link-interface.ts';
import { PLAIN_ALPN, RECORDS_ALPN_V1, RECORDS_ALPN_V2 } from '../../src/dataplane/record-keys.ts';
import { ACK_MESSAGE, SWITCH_MESSAGE } from '../../src/dataplane/tls-switch.ts';
import { TlsTransport, type TlsTransportInit } from '../../src/dataplane/tls-transport.ts';
import { recordWireTap } from './record-wire-tap.ts';
import type { TransportListener } from '../../src/dataplane/transport.ts';
import { capturingLogger, type LogRecord } from '../helpers/log-capture.ts';
import { waitFor } from '../helpers/wait.ts';

let ca: PemPair;
const certs = new Map<string, PemPair>();
const closers: Array<() => unknown> = [];

type RecordOptions = Partial<Pick<TlsTransportInit, 'recordRekey' | 'nativeRecordVersions'>>;

function transport(host: string, nativeRecords: boolean, logs?: LogRecord[], records: RecordOptions = {}): TlsTransport {
  const c = certs.get(host)!;
  let logger = silentLogger();
  if (logs !== undefined) {
    const cap = capturingLogger();
    cap.records.push = (...r: LogRecord[]) => logs.push(...r);
    logger = cap.logger;
  }
  return new TlsTransport({ logger }, { localHost: host, ca: ca.cert, cert: c.cert, key: c.key, nativeRecords, handshakeTimeoutMs: 3000, ...records });
}

async function listen(t: TlsTransport): Promise<{ listener: TransportListener; inbound: Link[] }> {
  const inbound: Link[] = [];
  const listener = await t.listen({ host: '127.0.0.1', port: 0 }, (l) => inbound.push(l));
  closers.push(async () => {
    for (const l of inbound) await l.close();
    await listener.close();
  });
  return { listener, inbound };
}

async function exchange(a: Link, b: Link): Promise<void> {
  const got: Frame[] = [];
  const back: Frame[] = [];
  b.onFrames((fs) => got.push(...fs));
  a.onFrames((fs) => back.push(...fs));
  for (let i = 0; i < 20; i++) {
    a.send({ data: Buffer.alloc(60 + i * 70, i), offload: undefined });
    b.send({ data: Buffer.alloc(100 + i, i), offload: undefined });
    await waitFor(() => got.length === i + 1 && back.length === i + 1, `frame ${i} both ways`); // one write (one record or more) each
  }
  assert.deepEqual(got.map((f) => f.data.length), Array.from({ length: 20 }, (_, i) => 60 + i * 70));
  assert.deepEqual(back.map((f) => f.data[0]), Array.from({ length: 20 }, (_, i) => i));
}

/** The ALPN each end logged when it switched. */
const switchedWith = (logs: LogRecord[]): unknown[] => logs.filter((r) => r.msg === 'switched to native records').map((r) => r.alpn);

describe('tls switch to native records', () => {
  before(async () => {
    ca = await createCa();
    for (const h of ['a', 'b']) certs.set(h, await issueHostCertificate(ca, h));
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('both ends offering records switch to vnet-records/2, and the link carries frames both ways', async () => {
    const logs: LogRecord[] = [];
    const { listener, inbound } = await listen(transport('b', true, logs));
    const a = await transport('a', true, logs).connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone', expectedPeer: 'b' });
    closers.push(() => a.close());
    await waitFor(() => inbound.length === 1, 'inbound link');
    assert.deepEqual(logs.filter((r) => r.msg === 'switched to native records').map((r) => r.role).sort(), ['dialer', 'listener']);
    assert.deepEqual(switchedWith(logs), [RECORDS_ALPN_V2, RECORDS_ALPN_V2]);
    await exchange(a, inbound[0]!);
  });

  it('with a tiny rekey threshold both directions send KEY_UPDATE records on the wire, and every frame arrives', async () => {
    const rekey: RecordOptions = { recordRekey: { records: 2, bytes: 1 << 20 } };
    const { listener, inbound } = await listen(transport('b', true, undefined, rekey));
    const tap = await recordWireTap(listener.port);
    closers.push(() => tap.close());
    const a = await transport('a', true, undefined, rekey).connect({ host: '127.0.0.1', port: tap.port, kind: 'backbone', expectedPeer: 'b' });
    closers.push(() => a.close());
    await waitFor(() => inbound.length === 1, 'inbound link');
    await exchange(a, inbound[0]!);
    const { toServer, toClient } = tap.counts;
    assert.ok(toServer.keyUpdate >= 9 && toClient.keyUpdate >= 9, `key updates: dialer→listener ${toServer.keyUpdate}, listener→dialer ${toClient.keyUpdate}`);
    assert.ok(toServer.data >= 21 && toClient.data >= 21);
    // What the admin interface shows of the link (GET /links `records`): the version, each direction's generation and its bytes under the current key.
    const keys = a.recordKeys?.();
    assert.ok(keys !== undefined && keys.version === 2, JSON.stringify(keys));
    assert.ok(keys.txGeneration >= toServer.keyUpdate && keys.rxGeneration >= 9, `generations tx ${keys.txGeneration} (wire ${toServer.keyUpdate}), rx ${keys.rxGeneration}`);
    assert.ok(keys.txRecords <= 2 && keys.txBytes > 0, 'at most the threshold\'s records under the current key');
    await waitFor(() => inbound[0]!.recordKeys?.()?.rxGeneration === a.recordKeys?.()?.txGeneration, 'the listener shows the dialer\'s send generation as its receive generation');
  });

  for (const old of ['dialer', 'listener'] as const) {
    it(`a ${old} that offers only vnet-records/1 gets /1 from a /2 peer: no key update even with a tiny threshold`, async () => {
      const logs: LogRecord[] = [];
      const v1: RecordOptions = { nativeRecordVersions: [1] };
      const tiny: RecordOptions = { recordRekey: { records: 1, bytes: 1 } };
      const { listener, inbound } = await listen(transport('b', true, logs, old === 'listener' ? v1 : tiny));
      const tap = await recordWireTap(listener.port);
      closers.push(() => tap.close());
      const a = await transport('a', true, logs, old === 'dialer' ? v1 : tiny).connect({ host: '127.0.0.1', port: tap.port, kind: 'backbone', expectedPeer: 'b' });
      closers.push(() => a.close());
      await waitFor(() => inbound.length === 1, 'inbound link');
      assert.deepEqual(switchedWith(logs), [RECORDS_ALPN_V1, RECORDS_ALPN_V1]);
      await exchange(a, inbound[0]!);
      assert.equal(tap.counts.toServer.keyUpdate + tap.counts.toClient.keyUpdate, 0);
      assert.deepEqual([a.recordKeys?.()?.version, a.recordKeys?.()?.txGeneration, a.recordKeys?.()?.rxGeneration], [1, 0, 0], 'a /1 link: version 1, no generation');
      assert.ok(tap.counts.toServer.data >= 21 && tap.counts.toClient.data >= 21, 'records, not plain TLS');
    });
  }

  it('bad records versions or rekey thresholds are a ConfigError naming the setting', () => {
    for (const [records, key] of [
      [{ nativeRecordVersions: [] }, 'nativeRecordVersions'],
      [{ nativeRecordVersions: [3 as 1] }, 'nativeRecordVersions'],
      [{ nativeRecordVersions: [2, 2] }, 'nativeRecordVersions'],
      [{ recordRekey: { records: 0, bytes: 10 } }, 'recordRekey'],
      [{ recordRekey: { records: 10, bytes: 1.5 } }, 'recordRekey'],
    ] as Array<[RecordOptions, string]>) {
      assert.throws(() => transport('a', true, undefined, records), (err: Error & { code?: string; key?: string }) => err.code === 'VNET_ERR_CONFIG' && err.key === key, JSON.stringify(records));
    }
  });

  for (const [dialer, listenerOffers] of [[true, false], [false, true]] as const) {
    it(`a ${dialer ? 'listener' : 'dialer'} that does not offer records keeps plain TLS`, async () => {
      const logs: LogRecord[] = [];
      const { listener, inbound } = await listen(transport('b', listenerOffers, logs));
      const a = await transport('a', dialer, logs).connect({ host: '127.0.0.1', port: listener.port, kind: 'backbone', expectedPeer: 'b' });
      closers.push(() => a.close());
      await waitFor(() => inbound.length === 1, 'inbound link');
      assert.equal(logs.filter((r) => r.msg === 'switched to native records').length, 0);
      await exchange(a, inbound[0]!);
    });
  }

  /** A raw TLS client as host a offering records, sending `bytes` after the handshake. */
  async function rawDialer(port: number, bytes: Buffer): Promise<TLSSocket> {
    const c = certs.get('a')!;
    const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.cert, cert: c.cert, key: c.key, ALPNProtocols: [RECORDS_ALPN_V2, RECORDS_ALPN_V1, PLAIN_ALPN], checkServerIdentity: () => undefined });
    s.on('error', () => undefined);
    await once(s, 'secureConnect');
    assert.equal(s.alpnProtocol, RECORDS_ALPN_V2);
    s.write(bytes);
    closers.push(() => s.destroy());
    return s;
  }

  for (const [what, bytes] of [
    ['SWITCH followed by more bytes in the same TLS record', Buffer.concat([SWITCH_MESSAGE, Buffer.from('early')])],
    ['something other than SWITCH', Buffer.from('VNRL\x01\x09\x00\x00', 'latin1')],
  ] as const) {
    it(`a listener refuses a dialer that sends ${what}`, async () => {
      const { listener, inbound } = await listen(transport('b', true));
      await rawDialer(listener.port, bytes);
      await waitFor(() => (listener.stats.refusedByCode['VNET_ERR_RECORD_SWITCH'] ?? 0) === 1, 'refused with VNET_ERR_RECORD_SWITCH');
      assert.equal(inbound.length, 0);
    });
  }

  it('a listener refuses a dialer that sends TLS data after SWITCH (in a TLS record of its own)', async () => {
    const { listener, inbound } = await listen(transport('b', true));
    const s = await rawDialer(listener.port, SWITCH_MESSAGE);
    const ack = await once(s, 'data');
    assert.deepEqual(ack[0], ACK_MESSAGE);
    s.write(Buffer.from('a TLS record after the switch')); // the listener's TLS reads have stopped: it must never see this as records
    s.end();
    await waitFor(() => listener.stats.refused + listener.stats.accepted >= 1 || inbound.length > 0, 'the handshake ends');
    await waitFor(() => listener.stats.refused === 1, 'refused');
    assert.equal(inbound.length, 0);
  });

  for (const [what, reply] of [
    ['a wrong ACK', Buffer.from('VNRL\x01\x01\x00\x00', 'latin1')],
    ['ACK with more bytes after it', Buffer.concat([ACK_MESSAGE, Buffer.from('raw too soon')])],
  ] as const) {
    it(`a dialer refuses a listener that answers with ${what}`, async () => {
      const b = certs.get('b')!;
      const server = tlsServer({ ca: ca.cert, cert: b.cert, key: b.key, requestCert: true, ALPNProtocols: [RECORDS_ALPN_V2, PLAIN_ALPN] }, (s) => {
        s.on('error', () => undefined);
        s.once('data', () => s.write(reply));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      closers.push(() => server.close());
      const port = (server.address() as { port: number }).port;
      await assert.rejects(transport('a', true).connect({ host: '127.0.0.1', port, kind: 'backbone' }), { code: 'VNET_ERR_RECORD_SWITCH' });
    });
  }
});
