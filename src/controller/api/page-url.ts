/**
 * The web page's address with an API token: the token rides in the fragment,
 * which browsers never send to the server. A secret: printed only at the
 * start that created the token, and on request (`vnet ctl web-url`). Kept
 * apart from the server so that `vnet ctl` loads none of it.
 */
export function operatorPageUrl(apiUrl: string, token: string): string {
  return `${apiUrl.replace(/\/+$/, '')}/#token=${encodeURIComponent(token)}`;
}
