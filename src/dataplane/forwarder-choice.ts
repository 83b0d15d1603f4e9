import { ConfigError } from '../common/errors.ts';
import type { DaemonConfig } from './daemon-config.ts';
import type { NativeForwardingInit } from './native-flows.ts';
import { DEFAULT_ADAPTIVE_POLL, type AdaptivePollOptions } from './native-forwarder.ts';

/**
 * Whether a daemon runs the native forwarder (docs/daemon.md, "Native
 * forwarding"), decided in one place for every way of starting one: the
 * configuration's `nativeForwarding`, else VNET_NATIVE_FORWARDING, else on
 * where the addon can run it.
 */

/** Whether `vnet daemon` runs the native forwarder, and how (nativeForwardingChoice). */
export type NativeForwardingChoice =
  /** `fallback`: when the forwarder cannot start (the addon missing or too old), run on the event loop with a warning instead of failing. */
  | { run: true; busyPollUs: number; adaptivePoll: AdaptivePollOptions | false; flowTtlMs: number; fallback: boolean }
  | { run: false; reason: string };

/** The environment variable that decides for a configuration that does not mention `nativeForwarding`. */
export const NATIVE_FORWARDING_ENV = 'VNET_NATIVE_FORWARDING';

/**
 * The native forwarder is the default. The config's `nativeForwarding` decides
 * when given: false is off, an object is on and required. Without it,
 * VNET_NATIVE_FORWARDING decides: unset, on where the addon can run it (else
 * the event loop, with a warning); 1, on and required (a deployment or a test
 * run that must not silently fall back); 0, off (to run on the event loop
 * path, to compare). Any other value is a ConfigError naming the variable.
 */
export function nativeForwardingChoice(c: Pick<DaemonConfig, 'nativeForwarding'>, env: Readonly<Record<string, string | undefined>>): NativeForwardingChoice {
  const n = c.nativeForwarding;
  if (n === false) return { run: false, reason: 'nativeForwarding: false in the configuration' };
  if (n !== undefined) return { run: true, busyPollUs: n.busyPollUs, adaptivePoll: n.adaptivePoll, flowTtlMs: n.flowTtlMs, fallback: false };
  const v = env[NATIVE_FORWARDING_ENV];
  const defaults = { run: true, busyPollUs: 0, adaptivePoll: { ...DEFAULT_ADAPTIVE_POLL }, flowTtlMs: 1000 } as const;
  if (v === undefined || v === '') return { ...defaults, fallback: true };
  if (v === '1') return { ...defaults, fallback: false };
  if (v === '0') return { run: false, reason: `${NATIVE_FORWARDING_ENV}=0 in the environment` };
  throw new ConfigError(`must be 0 (off) or 1 (on, required), got ${JSON.stringify(v)}`, { file: 'environment', key: NATIVE_FORWARDING_ENV });
}

/**
 * What a daemon's `nativeForwarding` (Daemon.start) comes to, however the
 * daemon is started (`vnet daemon`, `vnet demo`, a test, an embedding
 * program): given, it is used as it is; false is off; absent, the default of
 * nativeForwardingChoice (on where the addon can run it, else the event loop;
 * VNET_NATIVE_FORWARDING decides as there). Memory, stream, packet ports and
 * VXLAN links are simply not carried by the forwarder.
 */
export function resolveNativeForwarding(given: NativeForwardingInit | false | undefined, env: Readonly<Record<string, string | undefined>>): { init: NativeForwardingInit } | { init: undefined; reason: string } {
  if (given === false) return { init: undefined, reason: 'nativeForwarding: false' };
  if (given !== undefined) return { init: given };
  const choice = nativeForwardingChoice({ nativeForwarding: undefined }, env);
  return choice.run ? { init: nativeForwardingInit(choice) } : { init: undefined, reason: choice.reason };
}

/** The daemon's `nativeForwarding` (Daemon.start) for a choice: false when it says off, so that the default does not turn it on again. */
export function nativeForwardingInit(choice: Extract<NativeForwardingChoice, { run: true }>): NativeForwardingInit;
export function nativeForwardingInit(choice: NativeForwardingChoice): NativeForwardingInit | false;
export function nativeForwardingInit(choice: NativeForwardingChoice): NativeForwardingInit | false {
  return choice.run ? { busyPollUs: choice.busyPollUs, adaptivePoll: choice.adaptivePoll, ttlMs: choice.flowTtlMs, fallback: choice.fallback } : false;
}
