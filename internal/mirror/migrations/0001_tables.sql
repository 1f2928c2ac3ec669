-- The durable record of alertbridge: one row per object, keyed by its UID,
-- written by the mirror controllers. resource_version orders writes: an
-- upsert only replaces a row with an older resourceVersion, so replays and
-- out-of-order reconciles never move a row backwards.

CREATE TABLE alerts (
    uid              text PRIMARY KEY,
    namespace        text        NOT NULL,
    name             text        NOT NULL,
    resource_version numeric     NOT NULL,
    fingerprint      text        NOT NULL DEFAULT '',
    service          text        NOT NULL,
    env              text        NOT NULL,
    kind             text        NOT NULL,
    severity         text        NOT NULL,
    title            text        NOT NULL,
    message          text        NOT NULL DEFAULT '',
    source           text        NOT NULL DEFAULT '',
    labels           jsonb       NOT NULL DEFAULT '{}',
    phase            text        NOT NULL DEFAULT '',
    occurrences      bigint      NOT NULL DEFAULT 0,
    first_seen_at    timestamptz,
    last_seen_at     timestamptz,
    duplicate_of     text        NOT NULL DEFAULT '',
    holder           text        NOT NULL DEFAULT '',
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text        NOT NULL DEFAULT '',
    retry_after      timestamptz,
    ack_by           text        NOT NULL DEFAULT '',
    ack_note         text        NOT NULL DEFAULT '',
    acked_at         timestamptz,
    resolved_at      timestamptz,
    incident_name    text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    mirrored_at      timestamptz NOT NULL DEFAULT now()
);
-- Dashboard: counts by status and latest alerts in a window.
CREATE INDEX alerts_status_idx      ON alerts (namespace, phase, created_at DESC);
-- Top signatures (fingerprints) in a window.
CREATE INDEX alerts_fingerprint_idx ON alerts (namespace, fingerprint, created_at DESC);
-- By service/env, the runbook's list filters.
CREATE INDEX alerts_service_idx     ON alerts (namespace, service, env, created_at DESC);
CREATE INDEX alerts_created_idx     ON alerts (created_at);
-- Retention scans.
CREATE INDEX alerts_mirrored_idx    ON alerts (mirrored_at);

CREATE TABLE incidents (
    uid              text PRIMARY KEY,
    namespace        text        NOT NULL,
    name             text        NOT NULL,
    resource_version numeric     NOT NULL,
    service          text        NOT NULL,
    env              text        NOT NULL,
    severity         text        NOT NULL,
    title            text        NOT NULL,
    signature        text        NOT NULL DEFAULT '',
    state            text        NOT NULL,
    note             text        NOT NULL DEFAULT '',
    opened_at        timestamptz,
    mitigating_at    timestamptz,
    resolved_at      timestamptz,
    closed_at        timestamptz,
    last_activity_at timestamptz,
    alert_count      bigint      NOT NULL DEFAULT 0,
    alert_refs       jsonb       NOT NULL DEFAULT '[]',
    triage_runs      integer     NOT NULL DEFAULT 0,
    last_triage_at   timestamptz,
    cooldown_until   timestamptz,
    postmortem_ref   text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    mirrored_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_state_idx     ON incidents (namespace, state, created_at DESC);
CREATE INDEX incidents_signature_idx ON incidents (namespace, signature, created_at DESC);
CREATE INDEX incidents_service_idx   ON incidents (namespace, service, env, created_at DESC);
CREATE INDEX incidents_created_idx   ON incidents (created_at);
CREATE INDEX incidents_mirrored_idx  ON incidents (mirrored_at);

-- The full timeline: each entry exactly once, whatever the cluster trims.
CREATE TABLE incident_events (
    incident_uid  text        NOT NULL REFERENCES incidents (uid) ON DELETE CASCADE,
    seq           bigint      NOT NULL,
    namespace     text        NOT NULL,
    incident_name text        NOT NULL,
    at            timestamptz NOT NULL,
    type          text        NOT NULL,
    message       text        NOT NULL DEFAULT '',
    alert_ref     text        NOT NULL DEFAULT '',
    PRIMARY KEY (incident_uid, seq)
);
CREATE INDEX incident_events_at_idx ON incident_events (namespace, at DESC);

-- One row per TriageStarted timeline entry.
CREATE TABLE triage_runs (
    incident_uid  text        NOT NULL REFERENCES incidents (uid) ON DELETE CASCADE,
    seq           bigint      NOT NULL,
    namespace     text        NOT NULL,
    incident_name text        NOT NULL,
    signature     text        NOT NULL DEFAULT '',
    service       text        NOT NULL,
    started_at    timestamptz NOT NULL,
    message       text        NOT NULL DEFAULT '',
    alert_ref     text        NOT NULL DEFAULT '',
    PRIMARY KEY (incident_uid, seq)
);
CREATE INDEX triage_runs_signature_idx ON triage_runs (namespace, signature, started_at DESC);
CREATE INDEX triage_runs_started_idx   ON triage_runs (started_at);

-- One row per distinct status.lastEvaluatedAt of an SLOPolicy.
CREATE TABLE slo_evaluations (
    slo_uid            text        NOT NULL,
    namespace          text        NOT NULL,
    name               text        NOT NULL,
    service            text        NOT NULL,
    env                text        NOT NULL,
    evaluated_at       timestamptz NOT NULL,
    latency_p95_ms     numeric,
    error_rate_percent numeric,
    decision           text        NOT NULL DEFAULT '',
    reason             text        NOT NULL DEFAULT '',
    message            text        NOT NULL DEFAULT '',
    PRIMARY KEY (slo_uid, evaluated_at)
);
CREATE INDEX slo_evaluations_service_idx ON slo_evaluations (namespace, service, env, evaluated_at DESC);
CREATE INDEX slo_evaluations_at_idx      ON slo_evaluations (evaluated_at);

-- One row per distinct emergency bypass of an SLOPolicy's gate.
CREATE TABLE gate_bypasses (
    slo_uid     text        NOT NULL,
    namespace   text        NOT NULL,
    name        text        NOT NULL,
    service     text        NOT NULL,
    env         text        NOT NULL,
    until_at    timestamptz NOT NULL,
    reason      text        NOT NULL,
    set_by      text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (slo_uid, until_at, reason, set_by)
);
CREATE INDEX gate_bypasses_service_idx  ON gate_bypasses (namespace, service, env, recorded_at DESC);
CREATE INDEX gate_bypasses_recorded_idx ON gate_bypasses (recorded_at);
