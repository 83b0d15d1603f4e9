/**
 * node:test runs a context's `t.after` hooks in the order they were
 * registered (Node 20), but a harness that builds things in layers —
 * a work directory, namespaces, a controller, daemons — must take them down
 * in reverse: daemons first, the directory last. `lifoAfter(t)` is an
 * `after` hook that does that: one `t.after` on `t` runs every function
 * registered on the returned hook, the last registered first; each runs even
 * if an earlier one failed, and the first failure is thrown at the end.
 */
export interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

export function lifoAfter(t: AfterHook): AfterHook {
  const fns: Array<() => Promise<void> | void> = [];
  t.after(async () => {
    let first: unknown;
    for (const fn of fns.reverse()) {
      try { await fn(); } catch (err) { first ??= err; }
    }
    if (first !== undefined) throw first;
  });
  return { after: (fn) => { fns.push(fn); } };
}
