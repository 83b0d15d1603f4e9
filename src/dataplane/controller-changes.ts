import type { Logger } from '../common/logger.ts';
import { desiredLinkFromWire, type ControllerMessage, type DaemonMessage } from '../control/control-protocol.ts';
import { assembled, joinLinks, joinRules } from '../control/control-parts.ts';
import type { ControlPartError } from '../control/errors.ts';
import { PartAssembler, WHOLE, type PartLimits } from '../control/part-assembler.ts';
import type { DaemonControl, RuleSpec } from '../control/daemon-control.ts';
import { HeldRuleSet, type PatchRules } from '../control/rule-patch.ts';

type SetLinks = Extract<ControllerMessage, { type: 'set-links' }>;
type SetRules = Extract<ControllerMessage, { type: 'set-rules' }>;
type Ack = Extract<DaemonMessage, { type: 'ack' }>;

/** What the controller's changes did, in the agent's stats. */
export interface ChangeStats {
  linksApplied: number;
  rulesApplied: number;
  applyFailures: number;
  /** Rule-set patches applied, and refused (another base, or a digest that does not match: the controller sends the whole set). */
  patchesApplied: number;
  patchesRefused: number;
  /** Rule or link sets received in parts that were refused (broken sequence) or dropped incomplete. */
  partsRefused: number;
  partsDropped: number;
}

/**
 * The controller's desired state as the daemon takes it: set-links and
 * set-rules, whole or in parts (control-parts.ts; applied once the version
 * is whole, all at once; a newer version supersedes an incomplete one; a
 * broken sequence is nacked with nothing of it applied), and patch-rules
 * (rule-patch.ts: applied only onto exactly its base version, whole or not at
 * all, its result checked against the controller's digest), applied through
 * DaemonControl and answered with the ack to send, `{kind, version, ok}`.
 */
export class ControllerChanges {
  readonly #daemon: DaemonControl;
  readonly #log: Logger;
  readonly #stats: ChangeStats;
  readonly #rulesIn: PartAssembler<SetRules>;
  readonly #linksIn: PartAssembler<SetLinks>;
  /** The last controller set applied, whole: its digest is computed only when a patch comes (most daemons get few). */
  #whole: { version: number; rules: readonly RuleSpec[] } | undefined;
  /** The controller set as patches see it, once one came; kept rule by rule from then on. */
  #held: HeldRuleSet | undefined;

  constructor(daemon: DaemonControl, log: Logger, stats: ChangeStats, parts: PartLimits) {
    this.#daemon = daemon;
    this.#log = log;
    this.#stats = stats;
    const dropped = (error: ControlPartError): void => {
      stats.partsDropped++;
      log.warn({ detail: error.message }, 'incomplete set from the controller dropped');
    };
    this.#rulesIn = new PartAssembler('rule set', parts, dropped);
    this.#linksIn = new PartAssembler('link set', parts, dropped);
  }

  /** A new session: sets begun on the last one are forgotten. */
  reset(): void {
    this.#rulesIn.reset();
    this.#linksIn.reset();
  }

  /** Drop sets whose parts stopped coming. */
  expire(now: number): void {
    this.#rulesIn.expire(now);
    this.#linksIn.expire(now);
  }

  /** A set-links (or a part of one) of `bytes` on the wire: the ack to send once it is whole or refused. */
  links(m: SetLinks, bytes: number, now: number): Ack | undefined {
    const r = assembled(this.#linksIn.accept(m.version, m.part ?? WHOLE, bytes, m, now), joinLinks);
    if (r.state === 'refused') return this.#refused('links', m.version, r.error);
    if (r.state !== 'whole') return undefined;
    const whole = r.message;
    return this.#apply('links', m.version, () => {
      if (whole.members !== undefined) this.#daemon.setDeploymentHosts?.(whole.members);
      this.#daemon.applyFastPathLinks(m.version, whole.links.map(desiredLinkFromWire));
    });
  }

  /** A set-rules (or a part of one): the ack to send once it is whole or refused. */
  rules(m: SetRules, bytes: number, now: number): Ack | undefined {
    const r = assembled(this.#rulesIn.accept(m.version, m.part ?? WHOLE, bytes, m, now), joinRules);
    if (r.state === 'refused') return this.#refused('rules', m.version, r.error);
    if (r.state !== 'whole') return undefined;
    const rules = r.message.rules as RuleSpec[];
    return this.#apply('rules', m.version, () => {
      this.#daemon.applyRules(m.version, rules);
      this.#whole = { version: m.version, rules };
      this.#held = undefined;
    });
  }

  /** A patch-rules: applied onto exactly its base, or refused with nothing of it applied (the controller then sends the whole set). */
  patch(m: PatchRules): Ack {
    const ack = this.#apply('rules', m.version, () => {
      const next = this.#heldSet().patched(m);
      this.#daemon.applyRules(next.version, next.rules());
      this.#held = next;
      this.#whole = undefined;
    });
    if (ack.ok) this.#stats.patchesApplied++;
    else this.#stats.patchesRefused++;
    return ack;
  }

  /** The set the daemon holds now, as patches see it (none applied yet: version 0, empty). */
  #heldSet(): HeldRuleSet {
    if (this.#held !== undefined) return this.#held;
    this.#held = this.#whole === undefined ? new HeldRuleSet() : new HeldRuleSet(this.#whole.version, this.#whole.rules);
    this.#whole = undefined;
    return this.#held;
  }

  /** A set in parts that does not fit its sequence: nacked, nothing of it applied. */
  #refused(kind: 'links' | 'rules', version: number, error: ControlPartError): Ack {
    this.#stats.partsRefused++;
    this.#log.warn({ kind, version, code: error.code, detail: error.message }, 'set from the controller refused');
    return { type: 'ack', kind, version, ok: false, error: { code: error.code, message: error.message } };
  }

  #apply(kind: 'links' | 'rules', version: number, apply: () => void): Ack {
    try {
      apply();
    } catch (err) {
      this.#stats.applyFailures++;
      const e = err as { code?: unknown; message?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'VNET_ERR_INTERNAL';
      const message = String(e.message ?? err).slice(0, 4096);
      this.#log.warn({ kind, version, code, detail: message }, 'could not apply the controller change');
      return { type: 'ack', kind, version, ok: false, error: { code, message } };
    }
    if (kind === 'links') this.#stats.linksApplied++;
    else this.#stats.rulesApplied++;
    this.#log.debug({ kind, version }, 'applied controller change');
    return { type: 'ack', kind, version, ok: true };
  }
}
