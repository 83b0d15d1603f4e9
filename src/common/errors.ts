/**
 * Base of every vnet error. Each failure has its own subclass (in the
 * `errors.ts` of its area) with a stable `code` of the form VNET_ERR_…, so
 * callers and tests branch on the code, never on the message.
 */
export class VnetError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Configuration (flags, files, environment) that failed validation; names where and what. */
export class ConfigError extends VnetError {
  readonly file: string | undefined;
  readonly key: string | undefined;

  constructor(message: string, where: { file?: string | undefined; key?: string | undefined } = {}, options?: { cause?: unknown }) {
    const prefix = [where.file, where.key].filter((x) => x !== undefined && x !== '').join(': ');
    super('VNET_ERR_CONFIG', prefix ? `${prefix}: ${message}` : message, options);
    this.file = where.file;
    this.key = where.key;
  }
}
