"""The SQLite schema. World tables are wiped and reseeded on reset; credential and key
tables survive it."""

WORLD_TABLES = (
    "uploads",
    "inbound",
    "attempts",
    "deliveries",
    "audit",
    "annotations",
    "snapshots",
    "arming",
    "alarms",
    "events",
    "idempotency",
    "webhooks",
    "devices",
    "contacts",
    "sites",
    "monitoring_stations",
    "connections",
    "users",
    "dealers",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    status TEXT NOT NULL,          -- next | current | previous | retired | unpublished
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT,
    kind TEXT NOT NULL,            -- dealer_app | platform_partner
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,          -- space separated
    dealer_id INTEGER,             -- dealer apps only
    origin TEXT NOT NULL,          -- seeded | config | control
    redirect_uris TEXT NOT NULL DEFAULT '[]',   -- JSON array, exact match
    logout_urls TEXT NOT NULL DEFAULT '[]',     -- JSON array of allowed returnTo
    public INTEGER NOT NULL DEFAULT 0,          -- 1: no secret, PKCE required
    home_dealers TEXT NOT NULL DEFAULT '[]',    -- reconnected whenever the world is reseeded
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS client_keys (
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    kid TEXT NOT NULL,             -- '' when the key has no id
    alg TEXT NOT NULL,             -- RS256 | ES256 ... the only algorithm accepted for it
    public_pem TEXT,               -- NULL for a JWKS URL registration
    jwks_url TEXT,
    source TEXT NOT NULL,          -- where the key came from, for /_sandbox/credentials
    PRIMARY KEY (client_id, kid)
);
CREATE TABLE IF NOT EXISTS assertion_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE TABLE IF NOT EXISTS auth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    family_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    used_at REAL
);
CREATE TABLE IF NOT EXISTS token_families (
    family_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    audience TEXT NOT NULL,
    nonce TEXT,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS token_cutoffs (
    client_id TEXT PRIMARY KEY,
    before INTEGER NOT NULL        -- access tokens with an earlier iat count as expired
);
CREATE TABLE IF NOT EXISTS api_keys (
    key TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    dealer_id INTEGER NOT NULL,
    scopes TEXT NOT NULL,
    name TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL                -- set when rotated away (24 h grace)
);
CREATE TABLE IF NOT EXISTS dealers (
    dealer_id INTEGER PRIMARY KEY AUTOINCREMENT,
    company_name TEXT NOT NULL,
    company_address1 TEXT,
    company_address2 TEXT,
    company_email TEXT,
    company_phone_number TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    dealer_id INTEGER NOT NULL REFERENCES dealers(dealer_id) ON DELETE CASCADE,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
    client_id TEXT NOT NULL,
    dealer_id INTEGER NOT NULL REFERENCES dealers(dealer_id) ON DELETE CASCADE,
    external_dealer_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (client_id, dealer_id),
    UNIQUE (client_id, external_dealer_id)
);
CREATE TABLE IF NOT EXISTS monitoring_stations (
    monitoring_station_id INTEGER PRIMARY KEY AUTOINCREMENT,
    dealer_id INTEGER NOT NULL REFERENCES dealers(dealer_id) ON DELETE CASCADE,
    external_monitoring_station_id TEXT NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT,
    linecard TEXT,
    created_at REAL NOT NULL,
    UNIQUE (dealer_id, external_monitoring_station_id)
);
CREATE TABLE IF NOT EXISTS sites (
    site_id INTEGER PRIMARY KEY AUTOINCREMENT,
    dealer_id INTEGER NOT NULL REFERENCES dealers(dealer_id) ON DELETE CASCADE,
    external_site_id TEXT NOT NULL,
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    monitoring_station_id INTEGER REFERENCES monitoring_stations(monitoring_station_id)
        ON DELETE SET NULL,
    account_number TEXT,
    address1 TEXT,
    address2 TEXT,
    is_activated INTEGER NOT NULL DEFAULT 0,
    security_type INTEGER NOT NULL DEFAULT 3,
    created_at REAL NOT NULL,
    UNIQUE (dealer_id, external_site_id),
    UNIQUE (monitoring_station_id, account_number)
);
CREATE INDEX IF NOT EXISTS sites_by_dealer ON sites (dealer_id, site_id);
CREATE TABLE IF NOT EXISTS contacts (
    contact_id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
    external_contact_id TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone_number TEXT,
    email TEXT,
    created_at REAL NOT NULL,
    title TEXT,
    slot_number INTEGER,
    sms_alarm_enabled INTEGER NOT NULL DEFAULT 0,
    email_alarm_enabled INTEGER NOT NULL DEFAULT 0,
    sms_validation_requested_at REAL,   -- the last SMS validation asked for (dealer API)
    UNIQUE (site_id, external_contact_id)
);
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id INTEGER NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
    external_device_id TEXT NOT NULL,
    device_type TEXT NOT NULL,
    zone_number TEXT NOT NULL,
    additional_zone_numbers TEXT,
    name TEXT,
    mac TEXT,
    manufacturer TEXT,
    model TEXT,
    serial_number TEXT,
    channels INTEGER,
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'online',      -- online | offline
    last_seen REAL,
    firmware_version TEXT,
    labels TEXT NOT NULL DEFAULT '[]',         -- JSON array of strings (the Apps API's)
    group_name TEXT,
    configuration TEXT NOT NULL DEFAULT '{}',  -- JSON object (the Apps API's)
    UNIQUE (site_id, external_device_id)
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    dealer_id INTEGER,
    data TEXT NOT NULL,            -- JSON object
    created_at REAL NOT NULL,      -- when it happens (future for scheduled lifecycle steps)
    target_webhook_id TEXT,        -- set for a subscription's test event: only it receives it
    emitted INTEGER NOT NULL DEFAULT 0,
    -- scheduled: applied to the record when due | happened: in the record (seq set) |
    -- void: refused by the record when due | off_record: a test ping or adversarial delivery
    status TEXT NOT NULL DEFAULT 'off_record',
    seq INTEGER,                   -- the numeric event id, in the order things happened
    actor TEXT                     -- JSON: who made it happen (for the audit log)
);
CREATE INDEX IF NOT EXISTS events_due ON events (emitted, created_at);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY,     -- A-10293
    number INTEGER NOT NULL UNIQUE,
    dealer_id INTEGER NOT NULL,
    site_id INTEGER NOT NULL,
    external_site_id TEXT,
    device_id INTEGER,
    external_device_id TEXT,
    zone_number TEXT,
    priority TEXT NOT NULL,
    trigger TEXT NOT NULL,
    location TEXT,
    contact_id_code INTEGER,
    state TEXT NOT NULL,           -- created | acknowledged | escalated | dispatched | resolved
    snapshot_id TEXT,
    snapshot_url TEXT,             -- the link the alarm.created webhook carried
    clip_url TEXT,
    operator_id TEXT,
    reason TEXT,
    escalation_reason TEXT,
    responder TEXT,                -- JSON {responder_id, responder_type, eta_seconds, tracking_url}
    resolution TEXT,
    notes TEXT,
    created_at REAL NOT NULL,
    acknowledged_at REAL,
    escalated_at REAL,
    dispatched_at REAL,
    resolved_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_by_dealer ON alarms (dealer_id, created_at);
CREATE TABLE IF NOT EXISTS annotations (
    annotation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id TEXT NOT NULL REFERENCES alarms(alarm_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    verdict TEXT NOT NULL,         -- intruder | false-positive | uncertain
    confidence REAL,
    note TEXT,
    author TEXT NOT NULL,          -- the app or operator that wrote it
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id TEXT PRIMARY KEY,  -- snap_...
    dealer_id INTEGER NOT NULL,
    site_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    alarm_id TEXT,
    url TEXT,                      -- the link the webhook carried, if any
    claims TEXT NOT NULL,          -- JSON: what the frame shows (renders the same bytes)
    captured_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_device ON snapshots (device_id, captured_at);
CREATE TABLE IF NOT EXISTS arming (
    site_id INTEGER NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
    partition INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,     -- disarmed | armed_away | armed_stay | armed_night | armed_custom
    user_id TEXT,
    source TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (site_id, partition)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    dealer_id INTEGER,
    actor_kind TEXT NOT NULL,      -- app | client | user | operator | sandbox | device
    actor_id TEXT NOT NULL,
    actor_name TEXT,
    surface TEXT NOT NULL,         -- v1 | dealer | partner | control | schedule | seed
    action TEXT NOT NULL,          -- the event type, or a verb such as alarm.annotated
    target TEXT NOT NULL,          -- alarm A-10293, device 100002, site 10001 ...
    event_id TEXT,
    request_id TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    body BLOB NOT NULL,            -- byte-identical across attempts
    state TEXT NOT NULL,           -- pending | sending | delivered | failed | disabled
    attempts INTEGER NOT NULL DEFAULT 0,
    first_at REAL NOT NULL,        -- when attempt 1 was due
    next_at REAL,                  -- when the next attempt is due
    created_at REAL NOT NULL,
    chaos TEXT                     -- the webhook chaos that made or shaped it, if any
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE INDEX IF NOT EXISTS deliveries_due_by_webhook ON deliveries (state, webhook_id, next_at);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    scheduled_at REAL NOT NULL,
    sent_at REAL NOT NULL,
    outcome TEXT NOT NULL,         -- delivered | failed | timeout | blocked_destination | disabled
    status_code INTEGER,
    request TEXT NOT NULL,         -- JSON {url, headers, body}
    response TEXT,                 -- JSON {status, headers, body}
    latency_ms REAL,
    error TEXT,
    next_at REAL,
    chaos TEXT                     -- the webhook chaos this attempt met, if any
);
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id TEXT PRIMARY KEY,
    client_id TEXT,                -- NULL: a sandbox-wide subscription (serve --callback)
    url TEXT NOT NULL,
    events TEXT NOT NULL,          -- JSON array
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_at REAL NOT NULL,
    failing_since REAL,            -- first failed attempt of an unbroken failure run
    scopes TEXT                    -- the credential's, space-separated; NULL: the client's
);
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,          -- event_api | bridge
    client_id TEXT NOT NULL,       -- the Event API's caller, or bridge-<device_id>
    event_key TEXT,                -- the partner's 16-digit event_id (Event API only)
    fingerprint TEXT NOT NULL,     -- what was asked (a resend must ask the same)
    dealer_id INTEGER NOT NULL,
    site_id INTEGER NOT NULL,
    device_id INTEGER,
    channel INTEGER,
    event_type TEXT NOT NULL,      -- alarm | trouble | arming
    event_status TEXT,
    description TEXT,
    alarm_id TEXT,                 -- the alarm it made, if any
    record_events TEXT NOT NULL DEFAULT '[]',  -- JSON: ids of the happenings it caused
    answer TEXT NOT NULL,          -- JSON: what the sender was told (a resend gets it again)
    request_id TEXT,
    created_at REAL NOT NULL,
    UNIQUE (source, client_id, event_key)
);
CREATE TABLE IF NOT EXISTS uploads (
    media_id TEXT NOT NULL,        -- the alarm id (its links show the upload), or event-<key>
    kind TEXT NOT NULL,            -- snapshot | clip
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (media_id, kind)
);
CREATE TABLE IF NOT EXISTS idempotency (
    client_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER,                -- NULL while the first request is in flight
    body BLOB,
    created_at REAL NOT NULL,
    PRIMARY KEY (client_id, method, path, key)
);
"""

# columns added after a release, added to older database files when they are opened
ADDED_COLUMNS = (
    ("webhooks", "scopes", "TEXT"),
    ("events", "status", "TEXT NOT NULL DEFAULT 'off_record'"),
    ("events", "seq", "INTEGER"),
    ("events", "actor", "TEXT"),
    ("devices", "status", "TEXT NOT NULL DEFAULT 'online'"),
    ("devices", "last_seen", "REAL"),
    ("devices", "firmware_version", "TEXT"),
    ("devices", "labels", "TEXT NOT NULL DEFAULT '[]'"),
    ("devices", "group_name", "TEXT"),
    ("devices", "configuration", "TEXT NOT NULL DEFAULT '{}'"),
    ("contacts", "title", "TEXT"),
    ("contacts", "slot_number", "INTEGER"),
    ("contacts", "sms_alarm_enabled", "INTEGER NOT NULL DEFAULT 0"),
    ("contacts", "email_alarm_enabled", "INTEGER NOT NULL DEFAULT 0"),
    ("contacts", "sms_validation_requested_at", "REAL"),
    ("deliveries", "chaos", "TEXT"),
    ("attempts", "chaos", "TEXT"),
)
# indexes on added columns: made once the columns exist
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS events_by_seq ON events (seq);
CREATE INDEX IF NOT EXISTS events_by_dealer ON events (dealer_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (dealer_id, created_at, seq);
"""

VIEWS = """
CREATE VIEW IF NOT EXISTS site_view AS
SELECT s.site_id, s.dealer_id, s.external_site_id, s.name, s.timezone,
       s.monitoring_station_id, m.external_monitoring_station_id, s.account_number,
       s.address1, s.address2, s.is_activated, s.security_type, s.created_at
FROM sites s LEFT JOIN monitoring_stations m ON m.monitoring_station_id = s.monitoring_station_id;
"""
