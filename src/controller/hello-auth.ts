import type { TLSSocket } from 'node:tls';
import type { HelloMessage } from '../control/control-protocol.ts';
import type { SessionAuth } from './control-server.ts';
import { ControlAuthError } from './errors.ts';
import { acceptHostCertificate, peerCertificateIdentity, verifyHostCredential } from './host-identity.ts';
import { joinWithToken } from './join-tokens.ts';
import type { ControllerStore } from './store/store.ts';

/**
 * Who a hello is from, in order: a client certificate signed by the
 * deployment CA whose CN (or a DNS subjectAltName) is the hello's host id,
 * unless that certificate was revoked (host-identity.ts); else the host
 * credential issued at an earlier join; else a join token (join-tokens.ts:
 * it earns a credential, returned to be sent in the welcome). Anything else
 * throws ControlAuthError naming what was missing or wrong.
 */
export function authenticateHello(store: ControllerStore, tls: TLSSocket, hello: HelloMessage, now: number): { auth: SessionAuth; credential: string | undefined } {
  const certHost = peerCertificateIdentity(tls);
  let certNote = certHost.error !== undefined ? ` (client certificate refused: ${certHost.error})` : '';
  if (certHost.authorized) {
    if (!certHost.names.includes(hello.hostId)) throw new ControlAuthError(`certificate is for ${certHost.names.join(', ') || 'no host'}, not ${hello.hostId}`);
    if (acceptHostCertificate(store, hello.hostId, certHost.fingerprint, now)) return { auth: 'certificate', credential: undefined };
    certNote = ' (client certificate revoked)';
  }
  if (hello.auth === undefined) throw new ControlAuthError(`no valid client certificate and no join token or credential${certNote}`);
  if ('credential' in hello.auth) {
    if (verifyHostCredential(store, hello.hostId, hello.auth.credential, now)) return { auth: 'credential', credential: undefined };
    throw new ControlAuthError(`host credential not valid for ${hello.hostId}${certNote}`);
  }
  return { auth: 'join-token', credential: joinWithToken(store, hello.auth.joinToken, hello.hostId, now).credential };
}
