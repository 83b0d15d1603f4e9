import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { recordErrnoError } from './record-layer.ts';
import { RecordSocket } from './record-socket.ts';
import type { RecordKeyStatus } from './record-keys.ts';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.ts';
import type { LinkCounters } from '../control/daemon-control.ts';
import type { LinkWriter } from './link-writer.ts';
import type { EndpointSink, NativeForwarder } from './native-forwarder.ts';
import type { NativeEndpointId } from './native-flows.ts';

/**
 * A link's socket handed to the native forwarder and taken back (link.ts's
 * "native" stage; native-forwarder.ts says what the forwarder does with it).
 *
 *   endpoint  the first ask schedules the attach for after this turn (the
 *             frames in hand handled, nothing buffered either way), and says
 *             'later'; a socket that is neither plain TCP nor a TLS
 *             connection switched to native records (record-socket.ts) says
 *             'never' (a TLS socket proper, in-memory streams).
 *   attach    the forwarder dup()s the fd (a records link's: the raw TCP
 *             socket's, with the keys and counters, so that the thread seals
 *             and opens the records); Node's reads stop (`readStop`, with
 *             the handle's `reading` left set so that Node does not restart
 *             them on its own); the writer writes through the forwarder.
 *   up        bytes the forwarder did not forward go to the link's decoder,
 *             as if Node had read them; its counts go to the link's counters
 *             and mark the link alive.
 *   detach    writes gathered so far and the forwarder's backlog go out first,
 *             the bytes it still held are decoded (or, while the link ends,
 *             dropped), a records link carries on from the thread's counters,
 *             then Node reads again. On the forwarder's "failed" —
 *             the peer's end or a socket error — the link detaches and Node
 *             finds the end (or is told the error) itself; a record that
 *             did not verify, or a used-up key, destroys the socket with the
 *             RecordLayerError.
 */

export interface NativeLinkInit {
  socket: Duplex;
  writer: LinkWriter;
  stats: LinkCounters;
  maxMessageBytes: number;
  highWaterBytes: number;
  isOpen: () => boolean;
  /** Wire bytes the forwarder handed up (to the link's decoder). */
  onBytes: (bytes: Buffer) => void;
  /** The link's liveness flags (set when the forwarder carried traffic). */
  activity: () => { rxSeen: boolean };
  log: () => Logger;
}

export class NativeLinkBinding {
  readonly #init: NativeLinkInit;
  #native: { fwd: NativeForwarder; id: number } | undefined;
  /** 'asked': attaching after this turn; 'never': not to be served natively (again). */
  #state: 'no' | 'asked' | 'never' = 'no';
  /** Set while the link ends: bytes the forwarder still held are not decoded. */
  #discard = false;

  constructor(init: NativeLinkInit) {
    this.#init = init;
  }

  /** The endpoint id now, without asking for one. */
  current(fwd: NativeForwarder): NativeEndpointId {
    const native = this.#native;
    if (native !== undefined) return native.fwd === fwd ? native.id : 'never';
    return this.#state === 'asked' ? 'later' : 'never';
  }

  /** The endpoint id, asking for one (see the header). */
  endpoint(fwd: NativeForwarder): NativeEndpointId {
    if (this.#native !== undefined || this.#state === 'asked') return this.current(fwd);
    const socket = this.#init.socket;
    if (this.#state === 'never' || fwd.closed || socketHandle(tcpOf(socket)) === undefined || socket instanceof TLSSocket) return 'never';
    this.#state = 'asked';
    queueMicrotask(() => this.#attach(fwd));
    return 'later';
  }

  #attach(fwd: NativeForwarder): void {
    this.#state = 'no';
    const init = this.#init;
    const socket = init.socket as Socket;
    const records = socket instanceof RecordSocket ? socket : undefined;
    const tcp = tcpOf(socket);
    const handle = socketHandle(tcp);
    if (!init.isOpen() || fwd.closed || handle === undefined) return;
    if (socket.writableLength > 0 || socket.readableLength > 0 || socket.isPaused() || socket.writableCorked > 0 || handle.reading !== true) return; // asked again later
    if (records !== undefined && (tcp.writableLength > 0 || tcp.readableLength > 0 || tcp.isPaused() || records.holding)) return;
    const sink: EndpointSink = {
      onBytes: (bytes) => {
        if (!this.#discard) init.onBytes(bytes);
      },
      onFailed: (errno) => this.#failed(errno),
      addCounts: (rxFrames, rxBytes, txFrames, txBytes, txDropped) => {
        const st = init.stats;
        st.rxFrames += rxFrames;
        st.rxBytes += rxBytes;
        st.txFrames += txFrames;
        st.txBytes += txBytes;
        st.txDropped += txDropped;
        if (rxFrames > 0) init.activity().rxSeen = true;
        if (txFrames > 0) init.writer.activity.txSeen = true;
      },
    };
    let id: number;
    try {
      id = fwd.attachLink(handle.fd, init.maxMessageBytes, init.highWaterBytes, sink, records?.handOff());
    } catch (err) {
      this.#state = 'never';
      init.log().warn({ err }, 'the native forwarder cannot serve this link; it stays on the event loop');
      return;
    }
    handle.readStop();
    records?.handedOff(); // the thread has the keys now; ours are erased until it gives them back
    this.#native = { fwd, id };
    init.writer.useNative(fwd, id);
    init.log().debug({ endpoint: id, records: records !== undefined }, 'link served by the native forwarder');
  }

  /** A records link's key progress: the forwarder's while it holds the keys, else the socket's (undefined: no records). */
  recordKeys(): RecordKeyStatus | undefined {
    const socket = this.#init.socket;
    if (!(socket instanceof RecordSocket)) return undefined;
    const own = socket.keyStatus();
    const native = this.#native;
    const info = native?.fwd.recordsInfo(native.id);
    if (info === undefined) return own;
    return {
      version: own.version,
      txGeneration: info.txGeneration, rxGeneration: info.rxGeneration,
      txRecords: info.txRecords, txBytes: info.txBytes, rxRecords: info.rxRecords, rxBytes: info.rxBytes,
      txKeyAgeMs: info.txAgeMs,
    };
  }

  /** Take the socket back (see the header); `decodeQueued` false while the link ends. Idempotent. */
  detach(decodeQueued: boolean): void {
    const native = this.#native;
    if (native === undefined) return;
    this.#native = undefined;
    this.#state = 'never';
    this.#discard = !decodeQueued;
    this.#init.writer.useSocket();
    const { backlog, records: progress } = native.fwd.detachLink(native.id);
    const socket = this.#init.socket;
    if (socket.destroyed) return;
    const tcp = tcpOf(socket);
    if (socket instanceof RecordSocket && progress === undefined) {
      // The forwarder closed with the link's keys and counters: carrying on would reuse nonces.
      socket.destroy(new Error('the native forwarder closed while it held the link\'s record keys'));
      return;
    }
    if (backlog.length > 0) tcp.write(backlog); // a records link's backlog is sealed records already
    if (socket instanceof RecordSocket && progress !== undefined) socket.takeBack(progress);
    socketHandle(tcp)?.readStart();
  }

  /** The forwarder saw the socket end (errno 0) or fail: Node sees it too once it reads again. */
  #failed(errno: number): void {
    this.detach(true);
    const socket = this.#init.socket;
    if (errno === 0 || socket.destroyed) return;
    const recordError = socket instanceof RecordSocket ? recordErrnoError(errno) : undefined;
    socket.destroy(recordError ?? Object.assign(new Error(`native forwarder: socket error (errno ${errno})`), { errno }));
  }
}

/** The TCP socket under a link's stream: the stream itself, or a records link's raw socket. */
function tcpOf(socket: Duplex): Duplex {
  return socket instanceof RecordSocket ? socket.raw : socket;
}

/** Node's TCP handle of a socket (fd and the read switch), when it has one. */
interface TcpHandle {
  fd: number;
  reading?: boolean;
  readStop(): number;
  readStart(): number;
}

function socketHandle(socket: Duplex): TcpHandle | undefined {
  if (!(socket instanceof Socket)) return undefined;
  const handle = (socket as unknown as { _handle?: Partial<TcpHandle> | null })._handle;
  if (handle === null || handle === undefined || typeof handle.fd !== 'number' || handle.fd < 0) return undefined;
  if (typeof handle.readStop !== 'function' || typeof handle.readStart !== 'function') return undefined;
  return handle as TcpHandle;
}
