/** Tests reach a daemon's admin interface through the CLI's own client (a URL, or a URL and its bearer token). */
export { adminRequest, type AdminTarget } from '../../src/cli/admin-client.ts';
