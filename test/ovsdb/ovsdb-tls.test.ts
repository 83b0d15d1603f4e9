import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { OvsdbClient } from '../../src/ovsdb/ovsdb-client.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';

/** An ovsdb-server stand-in over TLS on loopback: answers list_dbs, requires a client certificate from `ca`. */
async function tlsServer(t: { after(fn: () => Promise<void>): void }, pem: { cert: string; key: string }, ca: string): Promise<number> {
  const server = createServer({ cert: pem.cert, key: pem.key, ca, requestCert: true, rejectUnauthorized: true }, (s: TLSSocket) => {
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      const req = JSON.parse(d.toString()) as { id: number; method: string };
      if (req.method === 'list_dbs') s.write(JSON.stringify({ id: req.id, result: ['Open_vSwitch'], error: null }));
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

test('OVSDB over SSL: mutual TLS with the deployment CA (the server certificate names a host id, not the address; ours, as vnet certs issues them, is for client and server)', async (t) => {
  const pki = testPki();
  const port = await tlsServer(t, pki.host('ovs1'), pki.ca);
  const client = await OvsdbClient.connect({ host: '127.0.0.1', port, tls: { ca: pki.ca, cert: pki.host('ovsdb-client').cert, key: pki.host('ovsdb-client').key } });
  try {
    assert.deepEqual(await client.listDbs(), ['Open_vSwitch']);
  } finally {
    client.close();
  }
});

test('OVSDB over SSL: a server whose certificate another CA signed is refused at connect, with the reason', async (t) => {
  const pki = testPki();
  const port = await tlsServer(t, pki.rogueHost('ovs1'), pki.ca);
  await assert.rejects(
    OvsdbClient.connect({ host: '127.0.0.1', port, tls: { ca: pki.ca, cert: pki.host('ovsdb-client').cert, key: pki.host('ovsdb-client').key } }),
    (err: Error & { code?: string }) => err.code === 'VNET_ERR_OVSDB_CONNECTION' && err.message.startsWith(`OVSDB ssl:127.0.0.1:${port}:`),
  );
});
