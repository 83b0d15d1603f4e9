// @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { HOST_ID_PATTERN } from '../common/host-id.ts';
import { ipAddressProblem } from '../common/ip-address.ts';
import { CertificateError } from './errors.ts';

/**
 * The deployment's certificates for mutual TLS between daemons: one CA
 * (ECDSA P-256, self-signed) and one certificate per host (CN = host id,
 * SAN DNS = host id plus optional names and IPs, serverAuth + clientAuth),
 * kept as PEM files in one directory:
 *
 *   DIR/ca.pem            the CA certificate (give it to every host)
 *   DIR/ca.key            the CA private key (PKCS#8, mode 0600; keep it on the operator's machine)
 *   DIR/hosts/NAME.pem    host NAME's certificate
 *   DIR/hosts/NAME.key    host NAME's private key (PKCS#8, mode 0600)
 *
 * Creating is idempotent: an existing CA or host certificate is kept (and
 * reported as such) unless `force` is set. Every failure is a
 * CertificateError naming the file.
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Certificates are valid from a little before their creation, for clocks that lag. */
const BACKDATE_MS = 5 * 60_000;

export interface PemPair {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
}

/** What a TLS transport needs: the CA to trust and this host's certificate and key (all PEM). */
export interface TlsCredentials {
  ca: string;
  cert: string;
  key: string;
}

export interface CaOptions {
  commonName?: string;
  days?: number;
  now?: Date;
}

export interface HostCertOptions {
  /** Extra SAN IP addresses. */
  ips?: readonly string[];
  /** Extra SAN DNS names. */
  dnsNames?: readonly string[];
  days?: number;
  now?: Date;
}

/** A new CA key and self-signed certificate, in memory. */
export async function createCa(opts: CaOptions = {}): Promise<PemPair> {
  const now = opts.now ?? new Date();
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${escapeDn(opts.commonName ?? 'vnet deployment CA')}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (opts.days ?? 3650) * DAY_MS),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

/** A host key and certificate signed by `ca`, in memory. */
export async function issueHostCertificate(ca: PemPair, host: string, opts: HostCertOptions = {}): Promise<PemPair> {
  checkHostId(host);
  for (const ip of opts.ips ?? []) {
    const problem = ipAddressProblem(ip);
    if (problem !== undefined) throw new CertificateError(`SAN IP address ${problem}`);
  }
  const caCert = parseCertificate(ca.cert, undefined);
  const caKey = await importKey(ca.key, undefined);
  const now = opts.now ?? new Date();
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [
    { type: 'dns', value: host },
    ...(opts.dnsNames ?? []).filter((n) => n !== host).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${host}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (opts.days ?? 825) * DAY_MS),
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

// ------------------------------------------------------------ directory layout

export function caFiles(dir: string): { cert: string; key: string } {
  return { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
}

export function hostFiles(dir: string, host: string): { cert: string; key: string } {
  checkHostId(host);
  return { cert: join(dir, 'hosts', `${host}.pem`), key: join(dir, 'hosts', `${host}.key`) };
}

export interface WriteResult {
  /** False when an existing certificate was kept. */
  created: boolean;
  certFile: string;
  keyFile: string;
}

/** Create the CA in `dir` unless one is there (then it is kept, unless `force`). */
export async function initCa(dir: string, opts: CaOptions & { force?: boolean } = {}): Promise<WriteResult> {
  const files = caFiles(dir);
  if (existsSync(files.cert) && opts.force !== true) {
    parseCertificate(readPem(files.cert), files.cert);
    return { created: false, certFile: files.cert, keyFile: files.key };
  }
  const ca = await createCa(opts);
  ensureDir(dir);
  writePemPair(files, ca);
  return { created: true, certFile: files.cert, keyFile: files.key };
}

/** Issue host `host`'s certificate from the CA in `dir`; an existing one signed by this CA is kept unless `force`. */
export async function issueHostCert(dir: string, host: string, opts: HostCertOptions & { force?: boolean } = {}): Promise<WriteResult> {
  const files = hostFiles(dir, host);
  const ca = readCa(dir);
  if (existsSync(files.cert) && opts.force !== true) {
    const existing = parseCertificate(readPem(files.cert), files.cert);
    if (!(await signedBy(existing, parseCertificate(ca.cert, caFiles(dir).cert)))) {
      throw new CertificateError('was issued by another CA than ca.pem; use --force to issue a new one', files.cert);
    }
    return { created: false, certFile: files.cert, keyFile: files.key };
  }
  const pair = await issueHostCertificate(ca, host, opts);
  ensureDir(join(dir, 'hosts'));
  writePemPair(files, pair);
  return { created: true, certFile: files.cert, keyFile: files.key };
}

/**
 * Load what host `host` needs for mutual TLS from `dir`, checking that the
 * certificate names the host, is signed by the CA and is valid now.
 */
export async function loadHostCredentials(dir: string, host: string, now: Date = new Date()): Promise<TlsCredentials> {
  const files = hostFiles(dir, host);
  const caFile = caFiles(dir).cert;
  const ca = readPem(caFile);
  const cert = readPem(files.cert);
  const key = readPem(files.key);
  const caCert = parseCertificate(ca, caFile);
  const hostCert = parseCertificate(cert, files.cert);
  await importKey(key, files.key);
  if (!(await signedBy(hostCert, caCert))) throw new CertificateError('is not signed by the CA in ca.pem', files.cert);
  if (!certificateHostNames(hostCert).includes(host)) throw new CertificateError(`does not name host ${host}`, files.cert);
  if (now < hostCert.notBefore || now > hostCert.notAfter) {
    throw new CertificateError(`is not valid now (valid ${hostCert.notBefore.toISOString()} to ${hostCert.notAfter.toISOString()})`, files.cert);
  }
  return { ca, cert, key };
}

/** CN and SAN DNS names of a certificate. */
export function certificateHostNames(cert: x509.X509Certificate | string): string[] {
  const c = typeof cert === 'string' ? parseCertificate(cert, undefined) : cert;
  const names = c.subjectName.getField('CN');
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  for (const n of san?.names.items ?? []) if (n.type === 'dns') names.push(n.value);
  return names;
}

// ------------------------------------------------------------ internals

function readCa(dir: string): PemPair {
  const files = caFiles(dir);
  if (!existsSync(files.cert)) throw new CertificateError(`no CA here: run \`vnet certs init --dir ${dir}\` first`, files.cert);
  return { cert: readPem(files.cert), key: readPem(files.key) };
}

function readPem(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CertificateError(`cannot read: ${(err as Error).message}`, file, { cause: err });
  }
}

function parseCertificate(pem: string, file: string | undefined): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (err) {
    throw new CertificateError(`not a PEM certificate: ${(err as Error).message}`, file, { cause: err });
  }
}

async function importKey(pem: string, file: string | undefined): Promise<webcrypto.CryptoKey> {
  try {
    const der = Buffer.from(pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, ''), 'base64');
    return (await webcrypto.subtle.importKey('pkcs8', der, EC, true, ['sign'])) as webcrypto.CryptoKey;
  } catch (err) {
    throw new CertificateError(`not a PKCS#8 P-256 private key: ${(err as Error).message}`, file, { cause: err });
  }
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function signedBy(cert: x509.X509Certificate, ca: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: ca.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

function checkHostId(host: string): void {
  if (!HOST_ID_PATTERN.test(host)) throw new CertificateError(`not a host id: ${JSON.stringify(host)} (1-63 letters, digits, ".", "_" or "-")`);
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CertificateError(`cannot create directory: ${(err as Error).message}`, dir, { cause: err });
  }
}

/** Write key (0600) and certificate, each through a temporary file and a rename, key first. */
function writePemPair(files: { cert: string; key: string }, pair: PemPair): void {
  writeAtomically(files.key, pair.key, 0o600);
  writeAtomically(files.cert, pair.cert, 0o644);
}

function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode, flag: 'w' });
    chmodSync(tmp, mode);
    renameSync(tmp, file);
  } catch (err) {
    throw new CertificateError(`cannot write: ${(err as Error).message}`, file, { cause: err });
  }
}
