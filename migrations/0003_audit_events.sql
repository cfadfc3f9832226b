-- The audit trail: one row per security-relevant event, written in the same transaction as the
-- change it records. No foreign keys: events outlive the accounts they speak of.
CREATE TABLE audit_events (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    type VARCHAR(64) NOT NULL,
    actor_id VARCHAR(36) NULL,
    user_id VARCHAR(36) NULL,
    ip VARCHAR(64) NULL,
    user_agent VARCHAR(512) NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
) {table_options};

CREATE INDEX audit_events_user_idx ON audit_events (user_id, id);
CREATE INDEX audit_events_type_idx ON audit_events (type, id);
CREATE INDEX audit_events_created_idx ON audit_events (created_at);
