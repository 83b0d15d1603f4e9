import type { ControlSession } from './control-server.ts';
import type { SessionProgress } from './reconcile.ts';

/**
 * Who is connected, and how far each daemon is: the versions of its links
 * and rules it reported (hello, facts) or acknowledged, and the push of each
 * kind still in flight. One entry per host; a newer session of a host
 * replaces the older one, and events of a replaced session are ignored
 * (`current` is false for it). No I/O: the applier sends through `session`.
 */

export interface SessionEntry {
  readonly session: ControlSession;
  readonly progress: SessionProgress;
}

export class SessionTable {
  readonly #entries = new Map<string, SessionEntry>();

  /** A session opened with the versions its daemon runs; `rulePatches`: it takes rule-set patches (negotiated feature). */
  open(session: ControlSession, reported: { linksVersion: number; rulesVersion: number }, rulePatches = false): void {
    this.#entries.set(session.hostId, {
      session,
      progress: {
        linksVersion: reported.linksVersion, rulesVersion: reported.rulesVersion, linksInFlight: undefined, rulesInFlight: undefined,
        ...(rulePatches ? { rulePatches } : {}),
      },
    });
  }

  /** The daemon refused a rule-set patch (not at its base, or its digest): the push is no longer in flight, and the next one is whole. */
  patchRefused(host: string, version: number): void {
    const p = this.progress(host);
    if (p === undefined) return;
    this.setProgress(host, { ...p, wholeRules: true, ...(p.rulesInFlight?.version === version ? { rulesInFlight: undefined } : {}) });
  }

  /** Forget a session; false if it was not the host's current one (already replaced). */
  close(session: ControlSession): boolean {
    if (!this.current(session)) return false;
    this.#entries.delete(session.hostId);
    return true;
  }

  /** Whether this is the host's current session. */
  current(session: ControlSession): boolean {
    return this.#entries.get(session.hostId)?.session === session;
  }

  get(host: string): SessionEntry | undefined {
    return this.#entries.get(host);
  }

  progress(host: string): SessionProgress | undefined {
    return this.#entries.get(host)?.progress;
  }

  setProgress(host: string, progress: SessionProgress): void {
    const e = this.#entries.get(host);
    if (e !== undefined) this.#entries.set(host, { session: e.session, progress });
  }

  /** What the daemon runs now (its facts) is what counts; a push in flight stays in flight. */
  reported(host: string, versions: { linksVersion: number; rulesVersion: number }): void {
    const p = this.progress(host);
    if (p !== undefined) this.setProgress(host, { ...p, linksVersion: versions.linksVersion, rulesVersion: versions.rulesVersion });
  }

  /** A positive ack: the daemon runs `version`; the push of that version is no longer in flight. */
  acknowledged(host: string, kind: 'links' | 'rules', version: number): void {
    const p = this.progress(host);
    if (p === undefined) return;
    const key = kind === 'links' ? 'linksInFlight' : 'rulesInFlight';
    this.setProgress(host, {
      ...p,
      ...(kind === 'links' ? { linksVersion: version } : { rulesVersion: version }),
      ...(p[key]?.version === version ? { [key]: undefined } : {}),
    });
  }

  /** The daemon's version of each desired set, as far as we know (undefined if not connected). */
  appliedVersions(host: string): { linksVersion: number; rulesVersion: number } | undefined {
    const p = this.progress(host);
    return p === undefined ? undefined : { linksVersion: p.linksVersion, rulesVersion: p.rulesVersion };
  }

  connectedHosts(): string[] {
    return [...this.#entries.keys()].sort();
  }

  /** Whether every connected daemon runs the desired versions `desired(host)` gives. */
  converged(desired: (host: string) => { linksVersion: number; rulesVersion: number }): boolean {
    for (const [host, e] of this.#entries) {
      const v = desired(host);
      if (e.progress.linksVersion !== v.linksVersion || e.progress.rulesVersion !== v.rulesVersion) return false;
    }
    return true;
  }

  /** Progress of every connected host (for the reconcile planner). */
  allProgress(): ReadonlyMap<string, SessionProgress> {
    return new Map([...this.#entries].map(([h, e]) => [h, e.progress] as const));
  }
}
