/**
 * Wait for a condition with a deadline: poll `check` (each turn of the event
 * loop, backing off to 10 ms) until it returns a truthy value, or fail naming
 * what was awaited. Tests use this instead of sleeping.
 *
 * `what` may be a function: it is called when the wait times out, to say
 * what was awaited and what was seen instead (the state, a log tail), so a
 * failure on a loaded CI machine can be read from its message alone.
 */
export async function waitFor<T>(check: () => T | Promise<T>, what: string | (() => string), timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  let delay = 0;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(10, delay + 1);
  }
}
