import { connect, createServer, type AddressInfo, type Server } from 'node:net';

/**
 * A loopback TCP proxy between a switch and the controller that keeps the
 * switch's bytes, cut into whole OpenFlow messages by their header lengths,
 * so a test can compare what Open vSwitch put on the wire with the codec.
 */
export class RecordingProxy {
  readonly fromSwitch: Buffer[] = [];
  readonly #server: Server;
  #pending = Buffer.alloc(0);
  #target = 0;

  constructor() {
    this.#server = createServer((downstream) => {
      const upstream = connect(this.#target, '127.0.0.1');
      downstream.on('data', (c: Buffer) => {
        this.#record(c);
        upstream.write(c);
      });
      upstream.on('data', (c: Buffer) => downstream.write(c));
      downstream.on('close', () => upstream.destroy());
      upstream.on('close', () => downstream.destroy());
      downstream.on('error', () => upstream.destroy());
      upstream.on('error', () => downstream.destroy());
    });
  }

  /** Listen on a free loopback port, forwarding to `target`; resolves with our port. */
  listen(target: number): Promise<number> {
    this.#target = target;
    return new Promise((resolve) => this.#server.listen(0, '127.0.0.1', () => resolve((this.#server.address() as AddressInfo).port)));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #record(chunk: Buffer): void {
    let buf = Buffer.concat([this.#pending, chunk]);
    while (buf.length >= 8 && buf.length >= buf.readUInt16BE(2) && buf.readUInt16BE(2) >= 8) {
      const len = buf.readUInt16BE(2);
      this.fromSwitch.push(Buffer.from(buf.subarray(0, len)));
      buf = buf.subarray(len);
    }
    this.#pending = Buffer.from(buf);
  }
}
