/**
 * A host id names a host of the deployment everywhere it appears: tunnel
 * hellos, certificates (the host's certificate name), the control channel,
 * deployment files, rules that send to a link. One pattern for all of them.
 */
export const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export const HOST_ID_RULE = 'a host id is 1-63 letters, digits, ".", "_" or "-"';

export function isHostId(text: string): boolean {
  return HOST_ID_PATTERN.test(text);
}
