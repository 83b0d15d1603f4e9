import { z } from 'zod';
import { ConfigError } from '../common/errors.ts';
import { ADAPTIVE_CAP_MAX_US, DEFAULT_ADAPTIVE_POLL } from './native-forwarder.ts';
import { formatPath, loadYamlConfig } from '../common/yaml-config.ts';
import { isMacString } from '../common/mac.ts';
import { addressWithPrefixSchema, hostSchema } from '../common/address-schemas.ts';
import { hostIdSchema as hostId, ruleSpecSchema } from '../control/rule-spec.ts';
import { CONTROL_URL_PATTERN } from '../control/control-protocol.ts';
import type { DesiredLink } from '../control/daemon-control.ts';
import { DEFAULT_PORT_SECURITY as SEC } from './port-security.ts';
import { isLoopbackHost } from './admin-access.ts';
import { VXLAN_DEFAULT_PORT, VXLAN_MAX_VNI } from './vxlan-codec.ts';
import { DEFAULT_VXLAN_MAX_FRAME_BYTES } from './vxlan-endpoint.ts';

/**
 * The daemon's configuration: from a YAML file (`vnet daemon --config F`),
 * from flags, or both (flags win). Validated once, strictly — unknown keys are
 * rejected with the file, line and key — then frozen.
 */

const mac = z.string().refine(isMacString, 'not a MAC address (expected e.g. 02:00:00:00:00:01)');
const port = z.number().int().min(0).max(65535);
const address = z.strictObject({ host: hostSchema, port });
const controlUrl = z.string().regex(CONTROL_URL_PATTERN, 'expected wss://HOST:PORT/PATH');


/**
 * The workload profiles a port's model guest may run: the names of
 * src/migration/guests/workload-profiles.ts (this layer does not import the
 * migration engine; test/host/daemon-runner.test.ts checks the two lists agree).
 */
export const GUEST_PROFILE_NAMES = ['idle', 'kernel-compile', 'tpc-w', 'specjbb', 'npb-mg', 'oltp'] as const;

/** The model guest standing for a port's VM (what a migration moves): small by default. */
const guestSchema = z.strictObject({
  profile: z.enum(GUEST_PROFILE_NAMES).default('idle'),
  memoryMiB: z.number().int().min(1).max(4096).default(16),
  diskMiB: z.number().int().min(0).max(4096).default(4),
  /**
   * The disk is this image version, copy-on-write (docs/images.md, "A VM's
   * disk from an image"): blocks the VM has not written are read from the
   * image, a chunk the site lacks fetched on demand; `diskMiB` is ignored.
   * `version` absent: the latest the controller announces. `bootTrace`: how
   * many distinct chunks the VM's first reads record (its boot trace), and
   * for how long after it starts. `nbd.socket`: the disk is served there
   * over NBD (a Unix socket, 0600; export name: the port's), for QEMU or
   * any NBD client (docs/images.md, "The disk over NBD").
   */
  image: z.strictObject({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'an image id is lower-case letters, digits, ".", "_" or "-", at most 63'),
    version: z.number().int().min(1).optional(),
    bootTrace: z.strictObject({
      chunks: z.number().int().min(1).max(10_000).default(64),
      withinMs: z.number().int().min(1).max(3_600_000).default(60_000),
    }).default({ chunks: 64, withinMs: 60_000 }),
    nbd: z.strictObject({ socket: z.string().min(1) }).optional(),
  }).optional(),
});

/**
 * A port's security (port-security.ts, docs/security.md): locked to its MAC
 * (and `allowedMacs`) by default, a few learned MACs, floods rate limited.
 */
const portSecuritySchema = z
  .strictObject({
    lock: z.boolean().default(SEC.lock),
    allowedMacs: z.array(mac).max(256).default([]),
    maxMacs: z.number().int().min(1).max(65_536).default(SEC.maxMacs),
    newMacsPerSecond: z.number().min(0).max(1_000_000).default(SEC.newMacsPerSecond),
    floodFramesPerSecond: z.number().min(0).max(10_000_000).default(SEC.floodFramesPerSecond),
    floodBurst: z.number().int().min(1).max(10_000_000).default(SEC.floodBurst),
  })
  .superRefine((s, ctx) => {
    if (s.lock && s.maxMacs < 1 + s.allowedMacs.length)
      ctx.addIssue({ code: 'custom', path: ['maxMacs'], message: `maxMacs ${s.maxMacs} is below the port's own MAC plus its ${s.allowedMacs.length} allowedMacs` });
  });

/** Link liveness defaults: a stopped hub is detected in deadMs + deadMs/4 at most (link-liveness.ts). */
export const DEFAULT_DAEMON_KEEPALIVE_MS = 250;
export const DEFAULT_DAEMON_DEAD_MS = 1500;

/** The levels `logLevel` may name (pino's). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Added to the tunnel listen port for the default migration channel port. */
export const MIGRATION_PORT_OFFSET = 1000;

const portSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a port name is 1-15 letters, digits, ".", "_" or "-" (it names the TAP device)'),
  /**
   * tap: a TAP device; memory: in-process (tests, demo); stream: QEMU's
   * `-netdev stream` on a Unix socket; packet: an AF_PACKET socket on an
   * existing interface (a TAP device QEMU holds: `-netdev tap,ifname=…`).
   */
  type: z.enum(['tap', 'memory', 'stream', 'packet']),
  mac,
  ip: addressWithPrefixSchema.optional(),
  mtu: z.number().int().min(576).max(9000).default(1500),
  /** TAP only: open with IFF_VNET_HDR and checksum/TSO offload. */
  offload: z.boolean().default(true),
  /** TAP only: move the device into this network namespace after creating it. */
  netns: z.string().min(1).optional(),
  /** The VM's model guest (memory, disk, workload) that a live migration moves; default idle, 16 MiB RAM, 4 MiB disk. */
  guest: guestSchema.optional(),
  /** Port security; absent: the defaults. */
  security: portSecuritySchema.optional(),
  /** Packet only: the interface to attach to (default: the port's name). */
  ifname: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'an interface name is 1-15 letters, digits, ".", "_" or "-"').optional(),
  /** Stream only: the socket QEMU connects to (default: qemu.dir/NAME.sock). */
  path: z.string().min(1).max(100).optional(),
  /**
   * Stream or packet: the daemon boots this VM itself, a real guest under
   * QEMU (TCG, scripts/guest-build.sh's kernel and initramfs, `ip` on its
   * eth0), and QEMU's own migration moves it. A packet port's TAP device is
   * then the daemon's: created before QEMU starts, deleted with the port.
   * Without it a stream port waits for a QEMU someone else starts, and a
   * packet port attaches to an interface that must exist.
   */
  qemu: z.strictObject({ memoryMiB: z.number().int().min(96).max(4096).default(128) }).optional(),
});

const fastPathSchema = z.strictObject({
  peer: hostId,
  host: hostSchema.optional(),
  port: port.optional(),
  /** Dial the peer (default: the side with the lower host id dials). */
  dial: z.boolean().optional(),
  reason: z.string().default('configured'),
});

/**
 * VXLAN tunnels (docs/vxlan.md): no handshake, no authentication, so only on
 * a trusted underlay, and the file must say so (`trustedUnderlay: true`).
 * The VTEPs are listed (host id, IP address, UDP port); datagrams from
 * anywhere else, or with another VNI, are dropped and counted.
 */
const vxlanSchema = z.strictObject({
  trustedUnderlay: z.literal(true, 'VXLAN carries frames unauthenticated and in clear: set trustedUnderlay: true to say the underlay between the VTEPs is trusted (docs/vxlan.md)'),
  vni: z.number().int().min(0).max(VXLAN_MAX_VNI),
  listen: z.strictObject({ host: z.string().min(1), port: port.default(VXLAN_DEFAULT_PORT) }),
  vteps: z.array(z.strictObject({ peer: hostId, host: z.string().min(1), port: port.min(1).default(VXLAN_DEFAULT_PORT) })).min(1).max(4096),
  maxFrameBytes: z.number().int().min(64).max(65_000).default(DEFAULT_VXLAN_MAX_FRAME_BYTES),
});

export const daemonConfigSchema = z
  .strictObject({
    host: hostId,
    role: z.enum(['hub', 'spoke']),
    site: z.string().min(1).optional(),
    transport: z.enum(['tcp', 'tls']).default('tcp'),
    listen: address.optional(),
    /** Where the hub listens (spokes); on a standby hub, where the primary hub listens (the trunk between them). */
    hub: address.optional(),
    hubId: hostId.optional(),
    /** The standby hub a spoke fails over to when it loses the hub (spokes only; its id is required). */
    standbyHub: z.strictObject({ host: hostSchema, port, id: hostId }).optional(),
    tls: z.strictObject({ dir: z.string().min(1) }).optional(),
    /**
     * Tunnel links (docs/security.md, "Tunnel links"). Plain TCP links are
     * authenticated by the host certificate of `tls.dir` (per host), or by the
     * deployment's link key `linkKeyFile` when given (membership of the
     * deployment only; `vnet certs link-key` makes one); with neither they are
     * refused unless both ends are on loopback or `allowUnauthenticated`. The
     * handshake (TLS and hello together) must finish within
     * `handshakeTimeoutMs`; at most `maxPendingHandshakes` connections (and
     * `maxPendingPerSource` from one address) may be in it at once, more
     * evict the oldest.
     */
    tunnel: z
      .strictObject({
        linkKeyFile: z.string().min(1).optional(),
        allowUnauthenticated: z.boolean().default(false),
        handshakeTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
        maxPendingHandshakes: z.number().int().min(1).max(65_536).default(256),
        maxPendingPerSource: z.number().int().min(1).max(65_536).default(16),
      })
      .default({ allowUnauthenticated: false, handshakeTimeoutMs: 5000, maxPendingHandshakes: 256, maxPendingPerSource: 16 }),
    /**
     * The deployment's host ids, for a daemon without a controller (with one,
     * the controller's list is added): links from any other host are refused.
     */
    members: z.array(hostId).min(1).max(65_536).optional(),
    /**
     * Where this host's migration channel listens (mutual TLS with the tls.dir
     * certificates; needs tls). Default: the tunnel listen host, at its port + 1000.
     * `advertise`: the host name or address sources dial, when not `host`.
     */
    migration: z.strictObject({ host: hostSchema, port, advertise: hostSchema.optional() }).optional(),
    /**
     * This site's VM image chunk store (docs/images.md): `dir` holds the chunks;
     * the chunk server listens at host:port for the other sites' daemons
     * (mutual TLS with the tls.dir certificates; needs tls).
     */
    images: z.strictObject({
      dir: z.string().min(1), host: hostSchema, port,
      /** Bring every announced version here in the background (default); false: chunks come only when a VM here reads them. */
      prefetch: z.boolean().default(true),
      /**
       * Collecting chunks no image version this site keeps references (docs/images.md, "Collecting chunks"):
       * `graceMs` — an unreferenced chunk is removed only once its file is older (default 24 h: a publish's
       * upload or a propagation is younger); `everyMs` — a pass at least this often (default 10 min);
       * `maxRemovals` — the most chunks one pass removes (default 1000).
       */
      /** The most bytes of chunks this store takes by propagation: a version that does not fit is refused (stalled, VNET_ERR_IMAGE_CAPACITY). */
      capacityBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
      collect: z.strictObject({
        graceMs: z.number().int().min(0).max(365 * 86_400_000).optional(),
        everyMs: z.number().int().min(1000).max(86_400_000).optional(),
        maxRemovals: z.number().int().min(1).max(1_000_000).optional(),
      }).default({}),
    }).optional(),
    /**
     * The admin interface (admin-access.ts): a Unix socket (0600), or HTTP with a
     * bearer token — generated at every start into tokenFile on a loopback
     * address, read from tokenFile (required) on any other. `vnet daemon`'s
     * default: { socket: RUN_DIR/HOST/admin.sock }.
     */
    admin: z
      .union([
        z.strictObject({ host: hostSchema, port, tokenFile: z.string().min(1).optional() }),
        z.strictObject({ socket: z.string().min(1) }),
      ])
      .optional(),
    /** A read-only Prometheus endpoint (GET /metrics) for scrapers, besides the admin interface's /metrics. */
    metrics: z.strictObject({ host: hostSchema, port }).optional(),
    /** This daemon's run directory: its private RUN_DIR/HOST (0700) holds the admin socket or token. Default /run/vnet as root. */
    runDir: z.string().min(1).optional(),
    /** The controller's control channel (WebSocket over TLS). Mutual TLS with `tls.dir`, or a join token for first contact. */
    controller: z
      .strictObject({
        /** One control channel, or `urls`: the replicas of a replicated controller (docs/ha.md), tried in turn for the leader. */
        url: controlUrl.optional(),
        urls: z.array(controlUrl).min(1).max(16).optional(),
        joinToken: z.string().min(1).optional(),
        /** Where to keep the credential the controller issues at a join (to rejoin after a restart). */
        credentialFile: z.string().min(1).optional(),
        /** The deployment CA, when `tls.dir` is not given. */
        caFile: z.string().min(1).optional(),
        /** The name the controller's certificate must carry (its host id). */
        servername: z.string().min(1).default('controller'),
      })
      .optional(),
    /** The log level (default: VNET_LOG_LEVEL, else info); a reload (SIGHUP) applies a new one at once. */
    logLevel: z.enum(LOG_LEVELS).optional(),
    /** The daemon's nice value (-20..19; default -10 when it runs as root, src/common/process-priority.ts; 0 leaves it alone). Fixed while it runs. */
    nice: z.number().int().min(-20).max(19).optional(),
    ports: z.array(portSchema).default([]),
    /** Where this host's QEMU VMs live (their sockets; needed for stream ports and to receive QEMU VMs), the QEMU binary, the guest's boot deadline. */
    qemu: z
      .strictObject({
        dir: z.string().min(1).max(80),
        binary: z.string().min(1).default('qemu-system-x86_64'),
        bootTimeoutMs: z.number().int().min(1000).max(600_000).default(120_000),
      })
      .optional(),
    fastPath: z.array(fastPathSchema).default([]),
    vxlan: vxlanSchema.optional(),
    rules: z.array(ruleSpecSchema).default([]),
    /**
     * Link liveness (every link, the backbone's included): a keepalive after
     * keepaliveMs of quiet, the peer declared dead after deadMs of silence.
     * The defaults detect a stopped hub in about 1.5 s (failover within 2 s)
     * and tolerate a peer that stalls for over a second. Every daemon of a
     * deployment should use the same values: deadMs must stay several
     * keepaliveMs of the peer's.
     */
    /**
     * The native forwarder (docs/daemon.md, "Native forwarding"): established
     * flows between TAP ports and plain-TCP links carried by a thread of the
     * TAP addon instead of the event loop. On by default (see
     * nativeForwardingChoice); false turns it off, {} asks for it with the
     * defaults (the daemon then fails to start without it).
     * busyPollUs: spin this long after every batch before sleeping (a fixed
     * override: costs CPU, saves a wake-up); adaptivePoll: spin only while
     * request/response traffic is seen, at most capUs after a frame and
     * budgetPercent of one core (default on; false: never); flowTtlMs: how long an installed flow lives before
     * one frame comes back through the event loop (learning refreshed).
     */
    nativeForwarding: z
      .union([
        z.literal(false),
        z.strictObject({
          busyPollUs: z.number().int().min(0).max(1000).default(0),
          adaptivePoll: z
            .union([
              z.literal(false),
              z.strictObject({
                capUs: z.number().int().min(1).max(ADAPTIVE_CAP_MAX_US).default(DEFAULT_ADAPTIVE_POLL.capUs),
                budgetPercent: z.number().int().min(1).max(100).default(DEFAULT_ADAPTIVE_POLL.budgetPercent),
              }),
            ])
            .default({ ...DEFAULT_ADAPTIVE_POLL }),
          flowTtlMs: z.number().int().min(10).max(60_000).default(1000),
        }),
      ])
      .optional(),
    keepaliveMs: z.number().int().min(50).max(60_000).default(DEFAULT_DAEMON_KEEPALIVE_MS),
    deadMs: z.number().int().min(200).max(600_000).default(DEFAULT_DAEMON_DEAD_MS),
    agingMs: z.number().int().min(1000).default(300_000),
    reconnect: z
      .strictObject({ initialMs: z.number().int().min(10).default(200), maxMs: z.number().int().min(10).default(10_000) })
      .default({ initialMs: 200, maxMs: 10_000 }),
  })
  .superRefine((c, ctx) => {
    if (c.role === 'spoke' && c.hub === undefined) ctx.addIssue({ code: 'custom', path: ['hub'], message: 'a spoke needs the hub address (hub: {host, port})' });
    if (c.standbyHub !== undefined && c.role !== 'spoke') ctx.addIssue({ code: 'custom', path: ['standbyHub'], message: 'only a spoke has a standby hub (a standby hub names the primary in hub: {host, port} and hubId)' });
    if (c.standbyHub !== undefined && c.hubId === undefined) ctx.addIssue({ code: 'custom', path: ['hubId'], message: 'a spoke with a standby hub needs the primary hub\'s id (hubId)' });
    if (c.standbyHub !== undefined && c.standbyHub.id === c.hubId) ctx.addIssue({ code: 'custom', path: ['standbyHub', 'id'], message: `the standby hub cannot be the primary hub ${c.hubId}` });
    if ((c.standbyHub?.id ?? c.hubId) === c.host) ctx.addIssue({ code: 'custom', path: [c.standbyHub?.id === c.host ? 'standbyHub' : 'hubId'], message: 'a host cannot be its own hub' });
    if (c.deadMs < 2 * c.keepaliveMs) ctx.addIssue({ code: 'custom', path: ['deadMs'], message: `deadMs (${c.deadMs}) must be at least twice keepaliveMs (${c.keepaliveMs}): a peer's keepalives may come 1.5 × keepaliveMs apart` });
    if (c.role === 'hub' && c.listen === undefined) ctx.addIssue({ code: 'custom', path: ['listen'], message: 'the hub must listen (listen: {host, port})' });
    if (c.controller !== undefined && c.tls === undefined && c.controller.caFile === undefined)
      ctx.addIssue({ code: 'custom', path: ['controller'], message: 'the control channel needs the deployment CA: tls: {dir} or controller.caFile' });
    if (c.controller !== undefined && (c.controller.url === undefined) === (c.controller.urls === undefined))
      ctx.addIssue({ code: 'custom', path: ['controller', 'urls'], message: 'give the controller\'s control channel as url or, for replicas, as urls: [...] (one of the two)' });
    if (c.transport === 'tls' && c.tunnel.linkKeyFile !== undefined)
      ctx.addIssue({ code: 'custom', path: ['tunnel', 'linkKeyFile'], message: 'a link key authenticates plain TCP links; TLS links use the certificates of tls.dir' });
    if (c.transport === 'tls' && c.tunnel.allowUnauthenticated)
      ctx.addIssue({ code: 'custom', path: ['tunnel', 'allowUnauthenticated'], message: 'TLS links are always authenticated by their certificates' });
    if (c.members !== undefined && !c.members.includes(c.host))
      ctx.addIssue({ code: 'custom', path: ['members'], message: `the members list must include this host (${c.host})` });
    if (c.transport === 'tls' && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'transport tls needs tls: {dir} (made by `vnet certs`)' });
    if (c.images !== undefined && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['images'], message: 'the image chunk server needs tls: {dir} (made by `vnet certs`)' });
    c.ports.forEach((p, i) => {
      if (p.guest?.image !== undefined && c.images === undefined)
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'guest', 'image'], message: 'a disk from an image needs this site\'s chunk store: images: {dir, host, port}' });
      const nbd = p.guest?.image?.nbd?.socket;
      if (nbd !== undefined && c.ports.some((q, j) => j < i && q.guest?.image?.nbd?.socket === nbd))
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'guest', 'image', 'nbd', 'socket'], message: `${nbd} is another port's NBD socket` });
      if (p.guest?.image !== undefined && p.qemu !== undefined)
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'guest', 'image'], message: 'a QEMU VM boots its own disk; an image disk is for the model guest' });
    });
    if (c.migration !== undefined && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['migration'], message: 'the migration channel needs tls: {dir} (made by `vnet certs`)' });
    if (c.migration === undefined && c.listen !== undefined && c.listen.port !== 0 && c.listen.port + MIGRATION_PORT_OFFSET > 65535)
      ctx.addIssue({ code: 'custom', path: ['migration'], message: `the default migration port (listen port + ${MIGRATION_PORT_OFFSET}) is above 65535: set migration: {host, port}` });
    if (c.admin !== undefined && 'host' in c.admin && !isLoopbackHost(c.admin.host) && c.admin.tokenFile === undefined)
      ctx.addIssue({ code: 'custom', path: ['admin', 'tokenFile'], message: `the admin interface on ${c.admin.host}, not a loopback address, needs a token: tokenFile (mode 0600, at least 32 characters)` });
    const names = new Set<string>();
    c.ports.forEach((p, i) => {
      if (p.type !== 'stream' && p.path !== undefined) ctx.addIssue({ code: 'custom', path: ['ports', i, 'path'], message: 'path is for stream ports only' });
      if (p.type !== 'stream' && p.type !== 'packet' && p.qemu !== undefined) ctx.addIssue({ code: 'custom', path: ['ports', i, 'qemu'], message: 'qemu is for stream and packet ports only' });
      if (p.type !== 'packet' && p.ifname !== undefined) ctx.addIssue({ code: 'custom', path: ['ports', i, 'ifname'], message: 'ifname is for packet ports only' });
      if (p.type === 'stream' && p.path === undefined && c.qemu === undefined)
        ctx.addIssue({ code: 'custom', path: ['ports', i, 'path'], message: 'a stream port needs a socket: path, or qemu: {dir} for the default' });
      if (p.qemu !== undefined && c.qemu === undefined) ctx.addIssue({ code: 'custom', path: ['qemu'], message: 'a port with a QEMU VM needs qemu: {dir}' });
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `duplicate port name ${p.name}` });
      names.add(p.name);
    });
    const ids = new Set<string>();
    c.rules.forEach((r, i) => {
      if (ids.has(r.id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id ${r.id}` });
      ids.add(r.id);
    });
    c.vxlan?.vteps.forEach((v, i) => {
      if (v.peer === c.host) ctx.addIssue({ code: 'custom', path: ['vxlan', 'vteps', i, 'peer'], message: 'a VXLAN tunnel to ourselves' });
    });
    c.fastPath.forEach((f, i) => {
      if (f.peer === c.host) ctx.addIssue({ code: 'custom', path: ['fastPath', i, 'peer'], message: 'a fast-path link to ourselves' });
    });
  });

export type DaemonConfig = z.output<typeof daemonConfigSchema>;
export type DaemonConfigInput = z.input<typeof daemonConfigSchema>;

/**
 * Where the migration channel listens: `migration`, else the tunnel listen
 * host at its port + 1000 (port 0 stays 0: a free port), else nowhere (this
 * host can send VMs away but not receive them).
 */
export function migrationListenAddress(c: DaemonConfig): { host: string; port: number; advertise: string | undefined } | undefined {
  if (c.migration !== undefined) return { host: c.migration.host, port: c.migration.port, advertise: c.migration.advertise };
  if (c.listen === undefined) return undefined;
  return { host: c.listen.host, port: c.listen.port === 0 ? 0 : c.listen.port + MIGRATION_PORT_OFFSET, advertise: undefined };
}

/** The configured fast-path links this daemon dials or accepts with an address (one without an address is accepted when the peer dials). */
/** The controller replicas' control channels, in the order a daemon tries them (`url` is a list of one). */
export function controllerUrls(c: NonNullable<DaemonConfig['controller']>): string[] {
  return c.urls ?? (c.url === undefined ? [] : [c.url]);
}

export function configuredFastPathLinks(c: DaemonConfig): DesiredLink[] {
  return c.fastPath
    .filter((f) => f.host !== undefined && f.port !== undefined)
    .map((f) => ({ peer: f.peer, address: { transport: c.transport, host: f.host!, port: f.port! }, reason: f.reason, dial: f.dial }));
}

export function loadDaemonConfig(file: string): Readonly<DaemonConfig> {
  return loadYamlConfig(file, daemonConfigSchema);
}

/** Validate a config given as an object (flags, tests); errors name `source` as the file. */
export function parseDaemonConfig(input: unknown, source = 'daemon config'): DaemonConfig {
  const r = daemonConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  throw new ConfigError(issue.message, { file: source, key: formatPath(path) || '(top level)' });
}
