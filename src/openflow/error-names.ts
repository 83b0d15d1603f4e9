/**
 * Names of OFPT_ERROR types and the codes a controller meets most
 * (OpenFlow 1.3 §7.4.4), for error messages a person can read.
 */

export const OFPET = {
  helloFailed: 0,
  badRequest: 1,
  badAction: 2,
  badInstruction: 3,
  badMatch: 4,
  flowModFailed: 5,
  groupModFailed: 6,
  portModFailed: 7,
  tableModFailed: 8,
  queueOpFailed: 9,
  switchConfigFailed: 10,
  roleRequestFailed: 11,
  meterModFailed: 12,
  tableFeaturesFailed: 13,
} as const;

const TYPES = [
  'OFPET_HELLO_FAILED',
  'OFPET_BAD_REQUEST',
  'OFPET_BAD_ACTION',
  'OFPET_BAD_INSTRUCTION',
  'OFPET_BAD_MATCH',
  'OFPET_FLOW_MOD_FAILED',
  'OFPET_GROUP_MOD_FAILED',
  'OFPET_PORT_MOD_FAILED',
  'OFPET_TABLE_MOD_FAILED',
  'OFPET_QUEUE_OP_FAILED',
  'OFPET_SWITCH_CONFIG_FAILED',
  'OFPET_ROLE_REQUEST_FAILED',
  'OFPET_METER_MOD_FAILED',
  'OFPET_TABLE_FEATURES_FAILED',
];

const CODES: Record<number, readonly string[]> = {
  0: ['INCOMPATIBLE', 'EPERM'],
  1: ['BAD_VERSION', 'BAD_TYPE', 'BAD_MULTIPART', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'EPERM', 'BAD_LEN', 'BUFFER_EMPTY', 'BUFFER_UNKNOWN', 'BAD_TABLE_ID', 'IS_SLAVE', 'BAD_PORT', 'BAD_PACKET', 'MULTIPART_BUFFER_OVERFLOW'],
  2: ['BAD_TYPE', 'BAD_LEN', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'BAD_OUT_PORT', 'BAD_ARGUMENT', 'EPERM', 'TOO_MANY', 'BAD_QUEUE', 'BAD_OUT_GROUP', 'MATCH_INCONSISTENT', 'UNSUPPORTED_ORDER', 'BAD_TAG', 'BAD_SET_TYPE', 'BAD_SET_LEN', 'BAD_SET_ARGUMENT'],
  3: ['UNKNOWN_INST', 'UNSUP_INST', 'BAD_TABLE_ID', 'UNSUP_METADATA', 'UNSUP_METADATA_MASK', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'BAD_LEN', 'EPERM'],
  4: ['BAD_TYPE', 'BAD_LEN', 'BAD_TAG', 'BAD_DL_ADDR_MASK', 'BAD_NW_ADDR_MASK', 'BAD_WILDCARDS', 'BAD_FIELD', 'BAD_VALUE', 'BAD_MASK', 'BAD_PREREQ', 'DUP_FIELD', 'EPERM'],
  5: ['UNKNOWN', 'TABLE_FULL', 'BAD_TABLE_ID', 'OVERLAP', 'EPERM', 'BAD_TIMEOUT', 'BAD_COMMAND', 'BAD_FLAGS'],
  6: ['GROUP_EXISTS', 'INVALID_GROUP', 'WEIGHT_UNSUPPORTED', 'OUT_OF_GROUPS', 'OUT_OF_BUCKETS', 'CHAINING_UNSUPPORTED', 'WATCH_UNSUPPORTED', 'LOOP', 'UNKNOWN_GROUP', 'CHAINED_GROUP', 'BAD_TYPE', 'BAD_COMMAND', 'BAD_BUCKET', 'BAD_WATCH', 'EPERM'],
  11: ['STALE', 'UNSUP', 'BAD_ROLE'],
};

/** e.g. "OFPET_FLOW_MOD_FAILED/OVERLAP"; numbers where the name is not known. */
export function errorName(type: number, code: number): string {
  const t = TYPES[type] ?? (type === 0xffff ? 'OFPET_EXPERIMENTER' : `type ${type}`);
  return `${t}/${CODES[type]?.[code] ?? `code ${code}`}`;
}
