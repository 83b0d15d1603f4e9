import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { HelloMessage, LinkKind, LinkRole } from './wire-messages.ts';

/**
 * What the peer's hello must satisfy before a link opens (link.ts runs the
 * exchange; docs/wire-protocol.md describes it): the opposite role, the kind
 * we asked for (dialer) or accept (listener), the expected host, not our own
 * id, and — on TLS — a host id that the peer's verified certificate names
 * (CN or SAN DNS).
 */
export interface HelloExpectation {
  /** Our role. */
  role: LinkRole;
  /** Dialer: the kind we asked for. Listener: the only kind we accept, or undefined for any. */
  kind: LinkKind | undefined;
  expectedPeer: string | undefined;
  localHost: string;
  socket: Duplex;
}

/** Why the hello is refused (sent to the peer in the goodbye), or undefined if it is acceptable. */
export function helloRefusal(hello: HelloMessage, want: HelloExpectation): string | undefined {
  const peerRole: LinkRole = want.role === 'dialer' ? 'listener' : 'dialer';
  if (hello.role !== peerRole) return `peer ${hello.hostId} is a ${hello.role} too`;
  if (want.kind !== undefined && hello.kind !== want.kind) {
    return want.role === 'dialer' ? `asked for a ${want.kind} link, peer answered ${hello.kind}` : `this listener accepts ${want.kind} links, not ${hello.kind}`;
  }
  if (want.expectedPeer !== undefined && hello.hostId !== want.expectedPeer) return `expected host ${want.expectedPeer}, peer says it is ${hello.hostId}`;
  if (hello.hostId === want.localHost) return `peer claims our own host id ${hello.hostId}`;
  return certificateMismatch(want.socket, hello.hostId);
}

/** For a TLS socket: why the certificate does not vouch for `hostId` (undefined when it does, or for plain sockets). */
function certificateMismatch(socket: Duplex, hostId: string): string | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  if (!socket.authorized) return `peer certificate not authorized: ${String(socket.authorizationError ?? 'none presented')}`;
  const cert = socket.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) return 'peer presented no certificate';
  const names = certificateNames(cert);
  if (names.includes(hostId)) return undefined;
  return `peer says it is ${hostId} but its certificate names ${names.join(', ') || 'nobody'}`;
}

/** CN and DNS subject alternative names of a peer certificate. */
export function certificateNames(cert: { subject?: unknown; subjectaltname?: string | undefined }): string[] {
  const names: string[] = [];
  const cn = (cert.subject as { CN?: string | string[] } | undefined)?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...cn);
  for (const entry of (cert.subjectaltname ?? '').split(',')) {
    const e = entry.trim();
    if (e.startsWith('DNS:')) names.push(e.slice(4));
  }
  return names;
}
