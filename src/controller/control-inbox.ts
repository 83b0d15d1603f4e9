import type { DaemonMessage, HelloMessage, WireFacts } from '../control/control-protocol.ts';
import { assembled, HELLO_FACTS_SEQ, joinFacts, joinTraffic } from '../control/control-parts.ts';
import type { ControlPartError } from '../control/errors.ts';
import { PartAssembler, WHOLE, type PartLimits } from '../control/part-assembler.ts';
import { ControlStateError } from './errors.ts';

type Traffic = Extract<DaemonMessage, { type: 'traffic' }>;
type Facts = Extract<DaemonMessage, { type: 'facts' }>;

/** A message whole (joined from its parts, or sent whole), still waiting for parts, or refused with nothing of it used. */
export type InboxResult<W> =
  | { readonly state: 'whole'; readonly message: W }
  | { readonly state: 'waiting' }
  | { readonly state: 'refused'; readonly error: ControlPartError | ControlStateError };

/**
 * What one control connection has received in parts so far
 * (control-parts.ts): its traffic reports, its facts, and the facts of a
 * hello that did not fit one message. Bounded by the part limits; a sequence
 * is used only whole.
 */
export class ConnectionInbox {
  readonly #facts: PartAssembler<WireFacts>;
  readonly #traffic: PartAssembler<Traffic>;
  /** An authenticated hello whose facts are still arriving in parts, and what it earned. */
  #hello: { message: HelloMessage; earned: unknown } | undefined;

  /** `onDropped` hears of sequences dropped incomplete (superseded by a newer one, or past their deadline). */
  constructor(limits: PartLimits, onDropped: (error: ControlPartError) => void) {
    this.#facts = new PartAssembler('facts', limits, onDropped);
    this.#traffic = new PartAssembler('traffic report', limits, onDropped);
  }

  /** Whether a hello waits for the rest of its facts. */
  get helloPending(): boolean {
    return this.#hello !== undefined;
  }

  traffic(m: Traffic, bytes: number, nowMs: number): InboxResult<Traffic> {
    return assembled(this.#traffic.accept(m.seq, m.part ?? WHOLE, bytes, m, nowMs), joinTraffic);
  }

  facts(m: Facts, bytes: number, nowMs: number): InboxResult<WireFacts> {
    if (m.seq === undefined) return { state: 'whole', message: m.facts };
    return assembled(this.#facts.accept(m.seq, m.part ?? WHOLE, bytes, m.facts, nowMs), joinFacts);
  }

  /** An authenticated hello in parts: its facts are part 1; `earned` (what authentication gave) comes back with the whole hello. */
  beginHello(hello: HelloMessage, earned: unknown, bytes: number, nowMs: number): InboxResult<never> {
    const r = this.#facts.accept(HELLO_FACTS_SEQ, hello.part ?? WHOLE, bytes, hello.facts, nowMs);
    if (r.state === 'refused') return r;
    this.#hello = { message: hello, earned };
    return { state: 'waiting' };
  }

  /** The next message after a hello in parts: only the rest of its facts may come. */
  helloFacts(m: DaemonMessage, bytes: number, nowMs: number): InboxResult<{ hello: HelloMessage; earned: unknown }> {
    const pending = this.#hello!;
    if (m.type !== 'facts' || m.seq !== HELLO_FACTS_SEQ || m.part === undefined) {
      return { state: 'refused', error: new ControlStateError(`${m.type} before the hello's facts were complete`) };
    }
    const r = assembled(this.#facts.accept(HELLO_FACTS_SEQ, m.part, bytes, m.facts, nowMs), joinFacts);
    if (r.state !== 'whole') return r;
    this.#hello = undefined;
    return { state: 'whole', message: { hello: { ...pending.message, facts: r.message }, earned: pending.earned } };
  }

  /** Give back the memory of sequences past their deadline. */
  expire(nowMs: number): void {
    this.#facts.expire(nowMs);
    this.#traffic.expire(nowMs);
  }
}
