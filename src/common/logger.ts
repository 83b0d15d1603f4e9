import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The root logger of a vnet process. Components take a child of it through
 * `componentLogger`, never a logger of their own, so that one process has one
 * level and one destination. The level comes from VNET_LOG_LEVEL (default info).
 */
export function createRootLogger(init: { level?: string; name?: string } = {}): Logger {
  const level = init.level ?? process.env.VNET_LOG_LEVEL ?? 'info';
  return pino({ level, name: init.name ?? 'vnet', base: { pid: process.pid } });
}

/** Where a component logger came from: the logger below every component, and the bindings the components added. */
const origins = new WeakMap<Logger, { base: Logger; bindings: Record<string, unknown> }>();

/**
 * A child logger tagged with the component that logs through it. A pino child
 * repeats every key its parent already bound, so a component logger made from
 * another one (a link's from its transport's) is made from the logger below
 * both instead, with the parent's bindings carried over and its own
 * `component` (and any key it binds again) in their place: each line has each
 * key once.
 */
export function componentLogger(parent: Logger, component: string, bindings: Record<string, unknown> = {}): Logger {
  const origin = origins.get(parent);
  const base = origin?.base ?? parent;
  const merged = { ...origin?.bindings, component, ...bindings };
  const child = base.child(merged);
  origins.set(child, { base, bindings: merged });
  return child;
}

/** A logger that drops everything: the default for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
