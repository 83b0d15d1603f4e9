/**
 * Which hosts may hold a link to this daemon: the deployment's hosts. A
 * certificate signed by the deployment CA, or the deployment's link key,
 * proves a peer was given credentials once; membership says it is a host of
 * the deployment now. Two sources, whose union is admitted:
 *
 *   configured  the daemon's `members:` list (a daemon without a controller).
 *   controller  the host ids the controller pushes with every set-links
 *               (`members`), replacing the previous list.
 *
 * Until either is known every authenticated host is admitted (a daemon that
 * starts while its controller is away keeps its links); the first list, and
 * every change, is announced to `onChange`, and the daemon then closes the
 * links of hosts that are no longer admitted. The check runs in the link
 * handshake (link-handshake.ts) of every transport, on the claimed host id
 * before any proof is sent, and again on the peer's side.
 */
export class HostMembership {
  readonly #configured: ReadonlySet<string> | undefined;
  #controller: ReadonlySet<string> | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(configured?: readonly string[]) {
    this.#configured = configured === undefined ? undefined : new Set(configured);
  }

  /** True once a list is known (configured, or from the controller). */
  get known(): boolean {
    return this.#configured !== undefined || this.#controller !== undefined;
  }

  /** The admitted host ids, sorted (undefined: no list yet, every authenticated host is admitted). */
  get hosts(): string[] | undefined {
    if (!this.known) return undefined;
    return [...new Set([...(this.#configured ?? []), ...(this.#controller ?? [])])].sort();
  }

  admits(hostId: string): boolean {
    if (!this.known) return true;
    return this.#configured?.has(hostId) === true || this.#controller?.has(hostId) === true;
  }

  /** The controller's list of the deployment's hosts. Returns true when the admitted set changed. */
  setFromController(hostIds: readonly string[]): boolean {
    const next = new Set(hostIds);
    const prev = this.#controller;
    if (prev !== undefined && prev.size === next.size && [...next].every((h) => prev.has(h))) return false;
    this.#controller = next;
    for (const l of this.#listeners) l();
    return true;
  }

  /** Called after every change of the admitted set; returns the function that unsubscribes. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
