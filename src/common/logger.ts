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

/** A child logger tagged with the component that logs through it. */
export function componentLogger(parent: Logger, component: string, bindings: Record<string, unknown> = {}): Logger {
  return parent.child({ component, ...bindings });
}

/** A logger that drops everything: the default for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
