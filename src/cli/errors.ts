import { VnetError } from '../common/errors.ts';

/**
 * Errors of `vnet ctl`, each with the exit code the command ends with:
 * 1 the controller refused the request, 2 bad usage or no token,
 * 3 controller unreachable, 4 token refused.
 */

export class CtlUsageError extends VnetError {
  readonly exitCode = 2;
  constructor(message: string) {
    super('VNET_ERR_CTL_USAGE', message);
  }
}

export class ControllerUnreachableError extends VnetError {
  readonly exitCode = 3;
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super('VNET_ERR_CTL_UNREACHABLE', `cannot reach controller at ${url}: ${reason}`, options);
  }
}

export class ControllerAuthRefusedError extends VnetError {
  readonly exitCode = 4;
  constructor(detail: string) {
    super('VNET_ERR_CTL_TOKEN_REFUSED', `controller refused the token (401): ${detail}`);
  }
}

/** The controller answered with an error (400, 404, 409, 5xx…); carries its code and message. */
export class ControllerRequestError extends VnetError {
  readonly exitCode = 1;
  readonly status: number;
  readonly apiCode: string;
  constructor(status: number, apiCode: string, message: string) {
    super('VNET_ERR_CTL_REQUEST', `controller answered ${status} ${apiCode}: ${message}`);
    this.status = status;
    this.apiCode = apiCode;
  }
}

/** The exit code for an error thrown by a ctl command (1 for anything unexpected). */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CtlUsageError || err instanceof ControllerUnreachableError || err instanceof ControllerAuthRefusedError || err instanceof ControllerRequestError) {
    return err.exitCode;
  }
  return 1;
}

/** A demo or command option that this machine cannot honour (e.g. --netns without root). */
export class CliPrerequisiteError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_CLI_PREREQUISITE', message);
  }
}

/** An `ip` command the CLI ran for the operator failed; the message carries its stderr. */
export class IpCommandError extends VnetError {
  readonly args: readonly string[];
  constructor(args: readonly string[], detail: string, options?: { cause?: unknown }) {
    super('VNET_ERR_IP_COMMAND', `ip ${args.join(' ')}: ${detail}`, options);
    this.args = args;
  }
}

/** A daemon's admin interface could not be reached (no socket, permission denied, refused, timed out). */
export class AdminUnreachableError extends VnetError {
  readonly exitCode = 3;
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super('VNET_ERR_ADMIN_UNREACHABLE', `cannot reach the daemon's admin interface at ${url}: ${reason}`, options);
  }
}
