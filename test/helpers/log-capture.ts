import { pino, type Logger } from 'pino';

export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger (debug and up) whose lines the test reads back as parsed records. */
export function capturingLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => records.push(JSON.parse(s) as LogRecord) });
  return { logger, records };
}

/** pino's number for warn. */
export const WARN = 40;
