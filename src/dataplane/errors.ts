import { VnetError } from '../common/errors.ts';

/** Bytes on a link that do not form a valid message; closes that link only. */
export class FrameDecodeError extends VnetError {
  constructor(code: `VNET_ERR_${string}`, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A message longer than the link's maximum. */
export class FrameTooLargeError extends FrameDecodeError {
  readonly length: number;
  readonly max: number;
  constructor(length: number, max: number) {
    super('VNET_ERR_FRAME_TOO_LARGE', `message of ${length} bytes exceeds the maximum of ${max}`);
    this.length = length;
    this.max = max;
  }
}

/** The peer's hello named a protocol version we do not speak. */
export class ProtocolVersionError extends VnetError {
  readonly version: number;
  constructor(version: number, supported: number) {
    super('VNET_ERR_PROTOCOL_VERSION', `peer speaks protocol version ${version}; this daemon speaks ${supported}`);
    this.version = version;
  }
}

/** The link handshake failed: no hello, wrong host, refused certificate. */
export class HandshakeError extends VnetError {
  /** The host id the peer's hello claimed, when it sent one (for the refusal's log line). */
  claimedHost: string | undefined;
  constructor(message: string, options?: { cause?: unknown }, code: `VNET_ERR_${string}` = 'VNET_ERR_HANDSHAKE') {
    super(code, message, options);
  }
}

/** The peer's authentication failed: a method we do not use, a proof that does not verify, a certificate the CA did not sign for that host. */
export class LinkAuthError extends HandshakeError {
  constructor(message: string) {
    super(message, undefined, 'VNET_ERR_LINK_AUTH');
  }
}

/** The peer's host id is not a host of the deployment (the controller's list, or the configured `members`). */
export class NotMemberError extends HandshakeError {
  readonly hostId: string;
  constructor(hostId: string) {
    super(`host ${hostId} is not a member of this deployment`, undefined, 'VNET_ERR_NOT_MEMBER');
    this.hostId = hostId;
  }
}

/** A plain TCP link without authentication between hosts that are not both on loopback, and the operator did not allow it. */
export class UnauthenticatedLinkError extends HandshakeError {
  constructor(message: string) {
    super(message, undefined, 'VNET_ERR_UNAUTHENTICATED_LINK');
  }
}

/** The peer sent nothing (not even a keepalive) for longer than the dead interval. */
export class LinkTimeoutError extends VnetError {
  constructor(peer: string, silentMs: number) {
    super('VNET_ERR_LINK_TIMEOUT', `link to ${peer} silent for ${Math.round(silentMs)} ms`);
  }
}

/** A TAP device could not be opened, configured, read or written. */
export class TapError extends VnetError {
  readonly errno: number | undefined;
  constructor(message: string, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_TAP', message, options);
    this.errno = errno;
  }
}

/** A forwarding rule that is not well-formed (bad MAC, unknown action, missing target). */
export class RuleError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_RULE', message);
  }
}

/** A frame's offload metadata (virtio_net_hdr) that cannot be applied in software: bad offsets, unsupported GSO type, headers that do not parse. */
export class OffloadError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_OFFLOAD', message);
  }
}

/** A message type byte this protocol version does not define. */
export class UnknownMessageError extends FrameDecodeError {
  readonly messageType: number;
  constructor(messageType: number) {
    super('VNET_ERR_UNKNOWN_MESSAGE', `unknown message type 0x${messageType.toString(16).padStart(2, '0')}`);
    this.messageType = messageType;
  }
}

/** A message whose body does not have the layout its type requires (runt frame, bad hello, keepalive with a body). */
export class MalformedMessageError extends FrameDecodeError {
  constructor(message: string) {
    super('VNET_ERR_MALFORMED_MESSAGE', message);
  }
}

/** An Ethernet frame shorter than two MACs and an EtherType. */
export class FrameTooShortError extends FrameDecodeError {
  readonly length: number;
  constructor(length: number, min: number) {
    super('VNET_ERR_FRAME_TOO_SHORT', `frame of ${length} bytes is shorter than the minimum of ${min}`);
    this.length = length;
  }
}

/** A hello that does not start with the vnet magic: the peer does not speak this protocol at all. */
export class BadMagicError extends FrameDecodeError {
  constructor(found: string) {
    super('VNET_ERR_BAD_MAGIC', `hello does not start with the magic "VNET" (found 0x${found})`);
  }
}

/** The peer ended the link with a goodbye; `reasonCode` and `reason` are what it sent. */
export class PeerGoodbyeError extends VnetError {
  readonly reasonCode: string;
  readonly reason: string;
  constructor(peer: string, reasonCode: string, reason: string) {
    super('VNET_ERR_PEER_GOODBYE', `${peer} closed the link (${reasonCode}): ${reason}`);
    this.reasonCode = reasonCode;
    this.reason = reason;
  }
}

/** The connection ended without a goodbye: reset, closed, or a socket error. */
export class LinkLostError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_LINK_LOST', message, options);
  }
}

/** A transport could not listen or connect (address in use, refused, unreachable). */
export class TransportError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_TRANSPORT', message, options);
  }
}

/** A long operation was cancelled through its AbortSignal. */
export class AbortedError extends VnetError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('VNET_ERR_ABORTED', `${what} aborted`, options);
  }
}

/** A well-formed message where the protocol does not allow one (a second hello on an open link). */
export class ProtocolViolationError extends FrameDecodeError {
  constructor(message: string) {
    super('VNET_ERR_PROTOCOL', message);
  }
}

/** A connection attempt (TCP connect, TLS handshake) that did not complete in time; the cause of the TransportError or HandshakeError the dial fails with. */
export class ConnectTimeoutError extends VnetError {
  constructor(timeoutMs: number) {
    super('VNET_ERR_CONNECT_TIMEOUT', `timed out after ${timeoutMs} ms`);
  }
}

/** A link's onFrames handler threw something that is not an Error; the link closes with this. */
export class FrameHandlerError extends VnetError {
  constructor(thrown: unknown) {
    super('VNET_ERR_FRAME_HANDLER', `the frame handler threw ${String(thrown)}`, { cause: thrown });
  }
}

/** A daemon started as a spoke without the address of its hub. */
export class SpokeWithoutHubError extends VnetError {
  constructor(hostId: string) {
    super('VNET_ERR_SPOKE_WITHOUT_HUB', `${hostId} is a spoke but has no hub to dial: give the hub's address (hub: {host, port} in the config, or --hub HOST:PORT)`);
  }
}

/** A port added to a daemon that has been closed. */
export class DaemonClosedError extends VnetError {
  constructor(hostId: string, what: string) {
    super('VNET_ERR_DAEMON_CLOSED', `cannot ${what}: the daemon on ${hostId} is closed`);
  }
}

/** A port added under a name the daemon already has. */
export class DuplicatePortError extends VnetError {
  readonly port: string;
  constructor(port: string, hostId: string) {
    super('VNET_ERR_DUPLICATE_PORT', `port ${port} already exists on ${hostId}`);
    this.port = port;
  }
}

/** A command named a port this daemon does not have. */
export class UnknownPortError extends VnetError {
  readonly port: string;
  constructor(port: string, hostId: string) {
    super('VNET_ERR_UNKNOWN_PORT', `no port ${port} on ${hostId}`);
    this.port = port;
  }
}

/** Port.start called a second time: a port has one receive handler for its life. */
export class PortAlreadyStartedError extends VnetError {
  constructor(port: string) {
    super('VNET_ERR_PORT_STARTED', `port ${port} already started`);
  }
}

/** Port.start called on a port that has been closed (or whose device failed). */
export class PortClosedError extends VnetError {
  constructor(port: string) {
    super('VNET_ERR_PORT_CLOSED', `port ${port} is closed`);
  }
}

/** Base of the errors about a file the daemon needs: the message starts with the file's name when there is one. */
abstract class NeededFileError extends VnetError {
  readonly file: string | undefined;
  constructor(code: `VNET_ERR_${string}`, message: string, file: string | undefined, options: { cause?: unknown } | undefined) {
    super(code, file === undefined ? message : `${file}: ${message}`, options);
    this.file = file;
  }
}

/** The deployment CA is not configured, or its file cannot be read. */
export class MissingCaError extends NeededFileError {
  constructor(message: string, file?: string, options?: { cause?: unknown }) {
    super('VNET_ERR_NO_CA', message, file, options);
  }
}

/** TLS (links or the control channel) without this host's certificate and key: not configured, or a file cannot be read. */
export class MissingHostCredentialsError extends NeededFileError {
  constructor(message: string, file?: string, options?: { cause?: unknown }) {
    super('VNET_ERR_NO_HOST_CREDENTIALS', message, file, options);
  }
}

// ---- the admin interface and the metrics endpoint

/** The admin interface could not be set up as safely as asked (bad address, unsafe file, unreadable token). */
export class AdminAccessError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_ADMIN_ACCESS', message, options);
  }
}

/** The admin interface cannot listen where it was told (address in use, no permission, bad path). */
export class AdminListenError extends VnetError {
  constructor(where: string, cause: unknown) {
    super('VNET_ERR_ADMIN_LISTEN', `the admin interface cannot listen on ${where}: ${(cause as Error).message}`, { cause });
  }
}

/** The metrics server cannot listen where configured. */
export class MetricsListenError extends VnetError {
  constructor(where: string, cause: Error) {
    super('VNET_ERR_METRICS_LISTEN', `the metrics endpoint cannot listen on ${where}: ${cause.message}`, { cause });
  }
}

/** The link key file cannot be read, is readable by others or too short; or the host certificate material for link authentication is unusable. */
export class LinkKeyError extends NeededFileError {
  constructor(message: string, file: string | undefined, options?: { cause?: unknown }) {
    super('VNET_ERR_LINK_KEY', message, file, options);
  }
}

/**
 * The TapErrors with a cause of their own (each keeps `instanceof TapError`
 * and `errno`, with a code of its own): a namespace, a device, a permission.
 */
abstract class TapCauseError extends TapError {
  constructor(code: `VNET_ERR_${string}`, message: string, errno: number | undefined, options: { cause?: unknown } | undefined) {
    super(message, errno, options);
    (this as { code: string }).code = code;
  }
}

/** The network namespace a TAP device was to be opened in does not exist (no /var/run/netns/NAME, or a file there that is no namespace: one being deleted). */
export class NetnsNotFoundError extends TapCauseError {
  readonly netns: string;
  constructor(netns: string, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_NETNS_NOT_FOUND', `network namespace ${netns} does not exist`, errno, options);
    this.netns = netns;
  }
}

/** Attaching to a TAP device that is not there (in the namespace named, if any). */
export class TapDeviceNotFoundError extends TapCauseError {
  readonly device: string;
  constructor(device: string, netns: string | undefined, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_TAP_NOT_FOUND', `TAP device ${device} does not exist${netns === undefined ? '' : ` in network namespace ${netns}`}`, errno, options);
    this.device = device;
  }
}

/** Opening a TAP device, or entering a namespace, was refused (EPERM/EACCES: not root, no CAP_NET_ADMIN, owner or group set on the device). */
export class TapPermissionError extends TapCauseError {
  constructor(message: string, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_TAP_PERMISSION', message, errno, options);
  }
}

/** QEMU's `-netdev stream` framing broken: a length the port cannot take (the connection is closed; QEMU may reconnect). */
export class StreamFramingError extends VnetError {
  readonly length: number;
  constructor(port: string, length: number, max: number) {
    super('VNET_ERR_STREAM_FRAMING', `port ${port}: QEMU stream frame of ${length} bytes is over the framing limit of ${max}; the stream is out of step, connection closed`);
    this.length = length;
  }
}

/** A stream port's socket: it cannot listen, or its listener failed, or QEMU did not come back in time. */
export class StreamPortError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_STREAM_PORT', message, options);
  }
}

/** The native forwarder (native/tap/forwarder*.cc) cannot be used: the addon is missing or too old, its thread did not start, an option is out of range, or an fd could not be attached. */
export class NativeForwarderError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_NATIVE_FORWARDER', message, options);
  }
}

/** A packet-socket port's socket could not be opened or failed (the interface deleted under it). */
export class PacketPortError extends VnetError {
  readonly errno: number | undefined;
  constructor(message: string, errno?: number, options?: { cause?: unknown }) {
    super('VNET_ERR_PACKET_PORT', message, options);
    this.errno = errno;
  }
}

/** A packet-socket port names an interface this daemon's network namespace does not have. */
export class PacketInterfaceNotFoundError extends VnetError {
  readonly ifname: string;
  constructor(ifname: string, options?: { cause?: unknown }) {
    super('VNET_ERR_PACKET_NO_INTERFACE', `interface ${ifname} does not exist in the daemon's network namespace`, options);
    this.ifname = ifname;
  }
}

/** A frame read from a packet-socket port that the port cannot take: shorter than an Ethernet header, or longer than the MTU allows (truncated by the socket). */
export class PacketFrameError extends VnetError {
  readonly reason: 'runt' | 'too-large';
  readonly length: number;
  constructor(port: string, reason: 'runt' | 'too-large', length: number, max: number) {
    super('VNET_ERR_PACKET_FRAME', reason === 'runt'
      ? `port ${port}: a ${length}-byte frame is shorter than an Ethernet header`
      : `port ${port}: a ${length}-byte frame is over the port's limit of ${max} bytes (MTU + Ethernet header + one VLAN tag)`);
    this.reason = reason;
    this.length = length;
  }
}

/** A frame from a packet-socket port whose source the port's address lock refuses (a MAC, or an IPv4/IPv6/ARP sender, not the VM's). */
export class PacketSourceError extends VnetError {
  readonly reason: 'mac' | 'ip' | 'malformed';
  constructor(port: string, reason: 'mac' | 'ip' | 'malformed', detail: string) {
    super('VNET_ERR_PACKET_SOURCE', `port ${port}: frame refused by the address lock: ${detail}`);
    this.reason = reason;
  }
}

/** Why a native-records link (record-layer.ts) failed: a record that does not verify, a bad length, a stream cut inside a record, a key used up, a bad KEY_UPDATE, a switch that could not be made exact. */
export type RecordLayerErrorCode = 'VNET_ERR_RECORD_AUTH' | 'VNET_ERR_RECORD_LENGTH' | 'VNET_ERR_RECORD_TRUNCATED' | 'VNET_ERR_RECORD_LIMIT' | 'VNET_ERR_RECORD_KEY_UPDATE' | 'VNET_ERR_RECORD_SWITCH';

/** A native-records link failed (the code says how); the link closes and is redialled with fresh keys. */
export class RecordLayerError extends VnetError {
  declare readonly code: RecordLayerErrorCode;
  constructor(code: RecordLayerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
