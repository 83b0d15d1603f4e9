import { OvsdbProtocolError } from './errors.ts';

/**
 * Splits an OVSDB connection's byte stream into JSON texts (RFC 7047 §4:
 * JSON-RPC 1.0 objects back to back, no framing). An incremental scanner
 * over bytes: it tracks nesting depth outside strings (the structural
 * characters and quotes are ASCII, so a UTF-8 sequence split between chunks
 * is never misread) and hands each complete top-level object to JSON.parse.
 * Limits: one message at most `maxMessageBytes`; only objects at the top
 * level (whitespace between them). Bad bytes become one OvsdbProtocolError
 * for the sink; the splitter then refuses input. It never throws.
 */

export interface JsonStreamSink {
  onJson(value: unknown): void;
  onError(err: OvsdbProtocolError): void;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export class JsonStream {
  readonly maxMessageBytes: number;
  readonly #sink: JsonStreamSink;
  #parts: Buffer[] = [];
  #held = 0;
  #depth = 0;
  #inString = false;
  #escape = false;
  #failed = false;

  constructor(sink: JsonStreamSink, init: { maxMessageBytes?: number } = {}) {
    this.#sink = sink;
    this.maxMessageBytes = init.maxMessageBytes ?? 16 << 20;
  }

  /** Bytes of an incomplete message held. */
  get bufferedBytes(): number {
    return this.#held;
  }

  push(chunk: Buffer): boolean {
    let start = 0;
    for (let i = 0; i < chunk.length && !this.#failed; i++) {
      const c = chunk[i]!;
      if (this.#depth === 0) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          start = i + 1;
          continue;
        }
        if (c !== OPEN_BRACE) return this.#fail(`expected a JSON object, got byte 0x${c.toString(16).padStart(2, '0')}`);
        start = i;
        this.#depth = 1;
        continue;
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === BACKSLASH) this.#escape = true;
        else if (c === QUOTE) this.#inString = false;
        continue;
      }
      if (c === QUOTE) this.#inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) this.#depth++;
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        this.#depth--;
        if (this.#depth === 0) {
          this.#take(chunk.subarray(start, i + 1));
          if (this.#failed) return false;
          this.#complete();
          start = i + 1;
        }
      }
    }
    if (!this.#failed && this.#depth > 0) this.#take(chunk.subarray(start));
    return !this.#failed;
  }

  #take(part: Buffer): void {
    if (part.length === 0) return;
    this.#held += part.length;
    if (this.#held > this.maxMessageBytes) {
      this.#fail(`a JSON-RPC message over the ${this.maxMessageBytes}-byte limit`);
      return;
    }
    this.#parts.push(Buffer.from(part));
  }

  #complete(): void {
    const text = (this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts)).toString('utf8');
    this.#parts = [];
    this.#held = 0;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.#fail(`not JSON: ${(err as Error).message}`);
      return;
    }
    this.#sink.onJson(value);
  }

  #fail(why: string): false {
    if (!this.#failed) {
      this.#failed = true;
      this.#parts = [];
      this.#held = 0;
      this.#sink.onError(new OvsdbProtocolError(`OVSDB stream: ${why}`));
    }
    return false;
  }
}
