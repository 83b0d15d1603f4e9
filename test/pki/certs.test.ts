import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  caFiles,
  certificateHostNames,
  createCa,
  hostFiles,
  initCa,
  issueHostCert,
  issueHostCertificate,
  loadHostCredentials,
} from '../../src/pki/certs.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vnet-certs-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('certs: in memory', () => {
  it('creates a self-signed ECDSA P-256 CA that may sign certificates', async () => {
    const ca = await createCa({ commonName: 'test CA' });
    const cert = new X509Certificate(ca.cert);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=test CA');
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    const key = createPrivateKey(ca.key);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  it('issues a host certificate: CN and SAN name the host, extra names and IPs, server+client auth, signed by the CA', async () => {
    const ca = await createCa();
    const host = await issueHostCertificate(ca, 'hub', { ips: ['10.0.0.1'], dnsNames: ['hub.example'] });
    const cert = new X509Certificate(host.cert);
    const caCert = new X509Certificate(ca.cert);
    assert.equal(cert.subject, 'CN=hub');
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.match(cert.subjectAltName ?? '', /DNS:hub/);
    assert.match(cert.subjectAltName ?? '', /DNS:hub\.example/);
    assert.match(cert.subjectAltName ?? '', /IP Address:10\.0\.0\.1/);
    assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.deepEqual(certificateHostNames(host.cert), ['hub', 'hub', 'hub.example']);
  });

  it('refuses a host id that is not one, and an IP that is not one', async () => {
    const ca = await createCa();
    await assert.rejects(issueHostCertificate(ca, '../etc'), { code: 'VNET_ERR_CERT' });
    await assert.rejects(issueHostCertificate(ca, 'h', { ips: ['10.0.0.300'] }), { code: 'VNET_ERR_CERT' });
    await assert.rejects(issueHostCertificate(ca, 'h', { ips: ['fe80::1%eth0'] }), (err: Error) => /zone id/.test(err.message));
  });

  it('puts IPv6 addresses in the SAN that TLS clients check', async () => {
    const host = await issueHostCertificate(await createCa(), 'hub', { ips: ['fd00:9::1', '::1'] });
    const cert = new X509Certificate(host.cert);
    assert.equal(cert.checkIP('fd00:9::1'), 'fd00:9::1');
    assert.equal(cert.checkIP('::1'), '::1');
    assert.equal(cert.checkIP('fd00:9::2'), undefined);
  });
});

describe('certs: directory', () => {
  it('writes the documented layout, keys with mode 0600', async () => {
    const dir = tempDir();
    const ca = await initCa(dir);
    const host = await issueHostCert(dir, 'a');
    assert.equal(ca.created, true);
    assert.equal(host.created, true);
    assert.equal(ca.certFile, join(dir, 'ca.pem'));
    assert.equal(ca.keyFile, join(dir, 'ca.key'));
    assert.equal(host.certFile, join(dir, 'hosts', 'a.pem'));
    assert.equal(host.keyFile, join(dir, 'hosts', 'a.key'));
    assert.equal(mode(ca.keyFile), 0o600);
    assert.equal(mode(host.keyFile), 0o600);
    assert.deepEqual(caFiles(dir), { cert: ca.certFile, key: ca.keyFile });
    assert.deepEqual(hostFiles(dir, 'a'), { cert: host.certFile, key: host.keyFile });
  });

  it('keeps an existing CA and host certificate (idempotent) and replaces them only with force', async () => {
    const dir = tempDir();
    await initCa(dir);
    await issueHostCert(dir, 'a');
    const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const hostPem = readFileSync(join(dir, 'hosts', 'a.pem'), 'utf8');
    assert.equal((await initCa(dir)).created, false);
    assert.equal((await issueHostCert(dir, 'a')).created, false);
    assert.equal(readFileSync(join(dir, 'ca.pem'), 'utf8'), caPem);
    assert.equal(readFileSync(join(dir, 'hosts', 'a.pem'), 'utf8'), hostPem);
    assert.equal((await initCa(dir, { force: true })).created, true);
    assert.notEqual(readFileSync(join(dir, 'ca.pem'), 'utf8'), caPem);
    assert.equal(mode(join(dir, 'ca.key')), 0o600);
    await assert.rejects(issueHostCert(dir, 'a'), { code: 'VNET_ERR_CERT', message: /issued by another CA.*--force/ });
    assert.equal((await issueHostCert(dir, 'a', { force: true })).created, true);
    await loadHostCredentials(dir, 'a');
  });

  it('says to run init first when there is no CA', async () => {
    await assert.rejects(issueHostCert(tempDir(), 'a'), { code: 'VNET_ERR_CERT', message: /vnet certs init/ });
  });

  it('loads { ca, cert, key } for a host', async () => {
    const dir = tempDir();
    await initCa(dir);
    await issueHostCert(dir, 'b');
    const creds = await loadHostCredentials(dir, 'b');
    assert.equal(creds.ca, readFileSync(join(dir, 'ca.pem'), 'utf8'));
    assert.equal(creds.cert, readFileSync(join(dir, 'hosts', 'b.pem'), 'utf8'));
    assert.equal(creds.key, readFileSync(join(dir, 'hosts', 'b.key'), 'utf8'));
  });

  it('refuses to load missing, foreign, mislabelled, corrupt or expired material, naming the file', async () => {
    const dir = tempDir();
    await initCa(dir);
    await issueHostCert(dir, 'b');
    await assert.rejects(loadHostCredentials(dir, 'nobody'), { code: 'VNET_ERR_CERT', message: /hosts\/nobody\.pem: cannot read/ });
    await assert.rejects(loadHostCredentials(dir, 'b', new Date(Date.now() + 900 * 86_400_000)), { code: 'VNET_ERR_CERT', message: /not valid now/ });
    // b's certificate copied under another name does not name that host.
    writeFileSync(join(dir, 'hosts', 'c.pem'), readFileSync(join(dir, 'hosts', 'b.pem')));
    writeFileSync(join(dir, 'hosts', 'c.key'), readFileSync(join(dir, 'hosts', 'b.key')));
    await assert.rejects(loadHostCredentials(dir, 'c'), { code: 'VNET_ERR_CERT', message: /does not name host c/ });
    // A certificate from another CA.
    const other = await createCa();
    const foreign = await issueHostCertificate(other, 'd');
    writeFileSync(join(dir, 'hosts', 'd.pem'), foreign.cert);
    writeFileSync(join(dir, 'hosts', 'd.key'), foreign.key);
    await assert.rejects(loadHostCredentials(dir, 'd'), { code: 'VNET_ERR_CERT', message: /not signed by the CA/ });
    writeFileSync(join(dir, 'hosts', 'b.key'), 'garbage');
    await assert.rejects(loadHostCredentials(dir, 'b'), { code: 'VNET_ERR_CERT', message: /b\.key: not a PKCS#8/ });
  });
});
