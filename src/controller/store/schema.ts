/**
 * The controller's database schema, as an ordered list of migrations. The
 * schema version is SQLite's `user_version`; `applyMigrations` runs every
 * migration above it, each in its own transaction, at start. Never edit a
 * migration that has shipped: add a new one.
 *
 * Times are wall-clock milliseconds (Date.now()) stored as INTEGER. MACs are
 * lower-case "aa:bb:cc:dd:ee:ff" strings. Structured values are JSON TEXT.
 */
export interface SchemaMigration {
  version: number;
  name: string;
  sql: string;
}

export const SCHEMA_MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: 'core registry: hosts, VMs, links, rules, traffic, topologies, migrations, audit, join tokens',
    sql: `
      CREATE TABLE hosts (
        id            TEXT PRIMARY KEY,
        site          TEXT,
        role          TEXT NOT NULL CHECK (role IN ('hub', 'spoke')),
        addresses     TEXT NOT NULL DEFAULT '[]',      -- JSON ListenAddress[]
        connected     INTEGER NOT NULL DEFAULT 0,
        first_seen_ms INTEGER,
        last_seen_ms  INTEGER,
        facts         TEXT                              -- JSON DaemonFacts, last reported
      );

      CREATE TABLE vms (
        mac         TEXT PRIMARY KEY,
        name        TEXT,
        ip          TEXT,
        host        TEXT,
        state       TEXT NOT NULL DEFAULT 'unknown',   -- running | migrating | stopped | unknown
        source      TEXT NOT NULL,                     -- deployment | learned | operator
        updated_ms  INTEGER NOT NULL
      );
      CREATE INDEX vms_host ON vms(host);

      -- Desired links. a < b (host ids, ordered), one row per pair and kind.
      CREATE TABLE links (
        a            TEXT NOT NULL,
        b            TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('backbone', 'fast-path')),
        requested_by TEXT NOT NULL,                    -- deployment | adaptation | operator:<who>
        reason       TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        PRIMARY KEY (a, b, kind),
        CHECK (a < b)
      );

      -- Desired controller rules, per host (derived from links and VM locations).
      CREATE TABLE rules (
        host     TEXT NOT NULL,
        id       TEXT NOT NULL,
        priority INTEGER NOT NULL,
        src      TEXT NOT NULL,
        dst      TEXT NOT NULL,
        action   TEXT NOT NULL,                        -- JSON RuleSpec['action']
        PRIMARY KEY (host, id)
      );

      -- Versions of the desired sets per host, and what the daemon last acknowledged.
      CREATE TABLE desired_versions (
        host          TEXT PRIMARY KEY,
        links_version INTEGER NOT NULL DEFAULT 0,
        links_digest  TEXT NOT NULL DEFAULT '',
        rules_version INTEGER NOT NULL DEFAULT 0,
        rules_digest  TEXT NOT NULL DEFAULT '',
        links_acked   INTEGER NOT NULL DEFAULT 0,
        rules_acked   INTEGER NOT NULL DEFAULT 0
      );

      CREATE TABLE traffic_samples (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        host      TEXT NOT NULL,
        start_ms  INTEGER NOT NULL,
        end_ms    INTEGER NOT NULL,
        src       TEXT NOT NULL,
        dst       TEXT NOT NULL,
        frames    INTEGER NOT NULL,
        bytes     INTEGER NOT NULL
      );
      CREATE INDEX traffic_samples_end ON traffic_samples(end_ms);

      CREATE TABLE topologies (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms     INTEGER NOT NULL,
        kind      TEXT NOT NULL,                       -- classification (ring, mesh, star, ... or unknown)
        changed   INTEGER NOT NULL,
        body      TEXT NOT NULL                        -- JSON: edges and weights
      );

      CREATE TABLE vm_migrations (
        id          TEXT PRIMARY KEY,
        vm_mac      TEXT NOT NULL,
        from_host   TEXT NOT NULL,
        to_host     TEXT NOT NULL,
        state       TEXT NOT NULL,                     -- pending | running | done | failed
        requested_by TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        finished_ms INTEGER,
        error       TEXT
      );

      CREATE TABLE migration_steps (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        migration_id TEXT NOT NULL REFERENCES vm_migrations(id),
        step         TEXT NOT NULL,
        state        TEXT NOT NULL,
        at_ms        INTEGER NOT NULL,
        detail       TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX migration_steps_mig ON migration_steps(migration_id, id);

      CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms   INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
      );

      CREATE TABLE join_tokens (
        id          TEXT PRIMARY KEY,
        hash        TEXT NOT NULL UNIQUE,              -- sha256 hex of the secret
        host        TEXT,                              -- bound to one host id, or any host of the deployment
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER,
        single_use  INTEGER NOT NULL,
        used_ms     INTEGER,
        used_by     TEXT
      );

      CREATE TABLE host_credentials (
        host        TEXT PRIMARY KEY,
        hash        TEXT NOT NULL,                     -- sha256 hex of the credential issued at join
        created_ms  INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'events, API tokens, reported link counters',
    sql: `
      CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms   INTEGER NOT NULL,
        type    TEXT NOT NULL,
        data    TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX events_at ON events(at_ms);

      CREATE TABLE api_tokens (
        id          TEXT PRIMARY KEY,
        hash        TEXT NOT NULL UNIQUE,              -- sha256 hex of the bearer token
        label       TEXT NOT NULL DEFAULT '',
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER
      );

      -- Link facts as the daemons last reported them (actual state), one row per (reporting host, peer).
      CREATE TABLE link_reports (
        host        TEXT NOT NULL,
        peer        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        tx_frames   INTEGER NOT NULL,
        tx_bytes    INTEGER NOT NULL,
        rx_frames   INTEGER NOT NULL,
        rx_bytes    INTEGER NOT NULL,
        tx_dropped  INTEGER NOT NULL,
        decode_errors INTEGER NOT NULL,
        reconnects  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        PRIMARY KEY (host, peer)
      );
    `,
  },
  {
    version: 3,
    name: 'index events by type (decisions, pruning of traffic snapshots)',
    sql: `
      CREATE INDEX events_type ON events(type, id);
    `,
  },
  {
    version: 4,
    name: 'migration coordinator: the state of each migration as JSON, indexed by state',
    sql: `
      -- The coordinator's whole record of a migration (step, timestamps, progress, cutover figures), JSON.
      ALTER TABLE vm_migrations ADD COLUMN run TEXT;
      CREATE INDEX vm_migrations_state ON vm_migrations(state);
    `,
  },
  {
    version: 5,
    name: 'access: API token scopes, join token revocation, host credential use, host certificate identities',
    sql: `
      -- Tokens made before scopes existed keep what they could do: everything.
      ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'operator';
      ALTER TABLE join_tokens ADD COLUMN revoked_ms INTEGER;
      ALTER TABLE host_credentials ADD COLUMN last_used_ms INTEGER;

      -- Each host's certificates (SHA-256 fingerprint): issued in the controller's TLS directory, or authenticated with; and which are revoked.
      CREATE TABLE host_certificates (
        host          TEXT NOT NULL,
        fingerprint   TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_used_ms  INTEGER,
        revoked_ms    INTEGER,
        PRIMARY KEY (host, fingerprint)
      );
    `,
  },
  {
    version: 6,
    name: 'geo-replicated images: published versions (manifests) and how much of each a site holds',
    sql: `
      -- One published version of an image: its manifest (src/images/manifest.ts) as JSON, written only once every chunk is stored at the origin site.
      CREATE TABLE image_versions (
        image_id     TEXT NOT NULL,
        version      INTEGER NOT NULL,
        manifest     TEXT NOT NULL,
        origin_site  TEXT NOT NULL,
        published_ms INTEGER NOT NULL,
        PRIMARY KEY (image_id, version)
      );
      -- Chunks of a version held at a site (distinct chunks, of total), as the site's daemon last reported.
      CREATE TABLE image_replicas (
        image_id   TEXT NOT NULL,
        version    INTEGER NOT NULL,
        site       TEXT NOT NULL,
        held       INTEGER NOT NULL,
        total      INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (image_id, version, site)
      );
    `,
  },
  {
    version: 7,
    name: 'traffic: one record per report (its pairs as JSON) instead of a row per pair',
    sql: `
      -- A daemon's traffic report of one update period: [[src, dst, frames, bytes], ...] in the order it sent them.
      -- One row (one etcd key) per report, however many pairs it carries (docs/scale.md).
      CREATE TABLE traffic_reports (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        host      TEXT NOT NULL,
        start_ms  INTEGER NOT NULL,
        end_ms    INTEGER NOT NULL,
        entries   TEXT NOT NULL
      );
      CREATE INDEX traffic_reports_end ON traffic_reports(end_ms);
      INSERT INTO traffic_reports (host, start_ms, end_ms, entries)
        SELECT host, start_ms, end_ms, json_group_array(json_array(src, dst, frames, bytes))
        FROM (SELECT * FROM traffic_samples ORDER BY end_ms, id) GROUP BY host, start_ms, end_ms ORDER BY min(id);
      DROP TABLE traffic_samples;
    `,
  },
  {
    version: 8,
    name: 'desired rules are derived, not stored: a rule per (host, VM) was hosts × VMs rows (10 million keys at 1,000 hosts / 10,000 VMs)',
    sql: `
      -- A host's desired rules are a function of the registry (hosts, VMs, links, hubs: reconcile.ts);
      -- desired_versions keeps each set's version and digest, which is what a new leader compares.
      DROP TABLE rules;
    `,
  },
  {
    version: 9,
    name: 'link reports are the leader\'s soft state, not stored: the hub\'s row per spoke changed every update period (1,000 keys a second at 1,000 hosts)',
    sql: `
      -- What daemons report of their links (state, counters, rates) is kept in memory by the leader (link-reports.ts)
      -- and rebuilt from the next reports after a leader change; each host's facts, stored when they change, keep the links' state.
      DROP TABLE link_reports;
    `,
  },
  {
    version: 10,
    name: 'image version numbers are never reused: every deleted version of an image is remembered',
    sql: `
      -- A version of an image that was published, then deleted (its image_versions row gone). With image_versions this is
      -- every number the image ever had: publishing one of these again is refused, even after the whole image was deleted,
      -- and the next number of an image is above both (docs/images.md, "Version numbers").
      CREATE TABLE image_deleted_versions (
        image_id     TEXT NOT NULL,
        version      INTEGER NOT NULL,
        published_ms INTEGER NOT NULL,
        deleted_ms   INTEGER NOT NULL,
        PRIMARY KEY (image_id, version)
      );
    `,
  },
];

export const SCHEMA_VERSION: number = SCHEMA_MIGRATIONS[SCHEMA_MIGRATIONS.length - 1]!.version;
