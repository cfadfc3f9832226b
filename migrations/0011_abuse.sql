-- Abuse protection, shared by every node.
--
-- rate_limits: one row per limited bucket (a route and a client network, or a mailbox),
-- holding its GCRA theoretical arrival time (tat) in milliseconds of the database's own clock,
-- and how long the latest request through it was told to wait (0: it was admitted).
CREATE TABLE rate_limits (
    bucket VARCHAR(200) NOT NULL PRIMARY KEY,
    tat BIGINT NOT NULL,
    wait_ms BIGINT NOT NULL
) {table_options};

CREATE INDEX rate_limits_tat_idx ON rate_limits (tat);

-- sign_in_attempts: failed sign-ins counted per account (or, for a name no account has, per
-- name) and per (account, client network), with the lock they earned; pending counts attempts
-- whose password is being checked, the latest taken at pending_since; known_at is when that
-- client network last signed in to the account successfully. A row may go once forget_at has
-- passed; a deleted account's rows simply age out.
CREATE TABLE sign_in_attempts (
    attempt_key VARCHAR(200) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NULL,
    failures BIGINT NOT NULL,
    pending BIGINT NOT NULL,
    pending_since BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    known_at BIGINT NULL,
    updated_at BIGINT NOT NULL,
    forget_at BIGINT NOT NULL
) {table_options};

CREATE INDEX sign_in_attempts_user_idx ON sign_in_attempts (user_id);
CREATE INDEX sign_in_attempts_forget_idx ON sign_in_attempts (forget_at);
