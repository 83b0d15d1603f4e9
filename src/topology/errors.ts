import { VnetError } from '../common/errors.ts';

/**
 * Errors of the topology area (VTTIF inference, VADAPT fast paths, placement).
 * Every failure has its own class and stable code; callers branch on `code`.
 * Report errors are *returned* by the validator (never thrown): a bad report
 * from a daemon is rejected and counted, never merged into the matrix.
 */

/** Base of every rejected traffic report; `path` names the offending field (e.g. `entries[3].frames`). */
export abstract class TrafficReportError extends VnetError {
  readonly path: string;

  constructor(code: string, path: string, message: string) {
    super(code, `traffic report ${path}: ${message}`);
    this.path = path;
  }
}

/** The report is not the expected shape (not an object, missing field, wrong type, too many entries). */
export class ReportShapeError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_SHAPE', path, message);
  }
}

/** startMs/endMs are not finite non-negative integers, endMs <= startMs, or the interval is too long. */
export class ReportIntervalError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_INTERVAL', path, message);
  }
}

/** A MAC is not an integer in [0, 2^48), a source MAC is multicast, or src equals dst. */
export class ReportMacError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_MAC', path, message);
  }
}

/** A frame or byte count is NaN, negative, non-finite, non-integer, or inconsistent with the other. */
export class ReportCountError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_COUNT', path, message);
  }
}

/** A count is well-formed but physically absurd for the interval (beyond any link's rate). */
export class ReportAbsurdValueError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_ABSURD', path, message);
  }
}

/** The same (src, dst) pair appears twice in one report. */
export class ReportDuplicatePairError extends TrafficReportError {
  constructor(path: string, message: string) {
    super('VNET_ERR_REPORT_DUPLICATE_PAIR', path, message);
  }
}

/** The VM registry handed to the topology functions is inconsistent (duplicate id or MAC, too many VMs). */
export class VmRegistryError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_VM_REGISTRY', message);
  }
}

/** A Patterns benchmark graph was asked for with parameters it is not defined for (e.g. a mesh of a prime count). */
export class PatternError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_PATTERN', message);
  }
}

/** Placement input is inconsistent (VM placed on an unknown host, capacity already exceeded, bad score). */
export class PlacementError extends VnetError {
  constructor(message: string) {
    super('VNET_ERR_PLACEMENT', message);
  }
}
