import type { Duplex } from 'node:stream';
import type { FrameDecodeError } from '../../src/dataplane/errors.ts';
import type { Frame } from '../../src/common/frame.ts';
import { FrameDecoder } from '../../src/dataplane/frame-codec.ts';
import { PROTOCOL_VERSION, encodeHello, type ControlMessage } from '../../src/dataplane/wire-messages.ts';
import type { LinkKind } from '../../src/control/daemon-control.ts';

/**
 * A hand-driven peer on a raw byte stream: tests write exact bytes with it
 * (hellos of other versions, garbage, nothing at all) and read what the link
 * under test sent back, decoded.
 */
export class RawPeer {
  readonly socket: Duplex;
  readonly frames: Frame[] = [];
  readonly controls: ControlMessage[] = [];
  decodeError: FrameDecodeError | undefined;
  chunks = 0;
  ended = false;

  constructor(socket: Duplex) {
    this.socket = socket;
    const decoder = new FrameDecoder({
      onFrames: (f) => {
        for (const x of f) this.frames.push({ data: Buffer.from(x.data), offload: x.offload === undefined ? undefined : Buffer.from(x.offload) });
      },
      onControl: (m) => this.controls.push(m),
      onDecodeError: (e) => {
        this.decodeError = e;
      },
    });
    socket.on('data', (chunk: Buffer) => {
      this.chunks++;
      decoder.push(chunk);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
    });
  }

  sendHello(hostId: string, kind: LinkKind = 'backbone', role: 'dialer' | 'listener' = 'dialer', version = PROTOCOL_VERSION): void {
    this.socket.write(encodeHello({ hostId, kind, role, version }));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  goodbye(): ControlMessage | undefined {
    return this.controls.find((c) => c.type === 'goodbye');
  }

  hello(): ControlMessage | undefined {
    return this.controls.find((c) => c.type === 'hello');
  }
}

/** An Ethernet frame of `length` bytes whose payload starts with the 32-bit sequence number `seq`. */
export function numberedFrame(seq: number, length = 64): Buffer {
  const b = Buffer.alloc(length);
  b.fill(0xff, 0, 6); // broadcast destination
  b.writeUInt32BE(0x02000000, 6); // source 02:00:00:00:..
  b.writeUInt16BE(0x88b5, 12); // local experimental EtherType
  b.writeUInt32BE(seq >>> 0, 14);
  return b;
}

export function frameSeq(frame: Frame): number {
  return frame.data.readUInt32BE(14);
}

/** `promise`, or a failure naming `what` after `timeoutMs` (the timer also keeps the event loop alive meanwhile). */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
