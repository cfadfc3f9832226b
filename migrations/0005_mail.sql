-- Mail: the outbox that delivers it, and the single-use tokens its links carry.

-- One row per mail to send, written in the same transaction as the change that causes it and
-- deleted once the SMTP server has accepted it. A worker claims a row by setting a lease; a
-- lease that runs out (a crashed node) makes the row claimable again.
CREATE TABLE outbox (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    recipient VARCHAR(254) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner VARCHAR(36) NULL,
    lease_until BIGINT NULL,
    last_error VARCHAR(500) NULL
) {table_options};

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at);

-- E-mail verification and password reset tokens, by the SHA-256 of the token.
CREATE TABLE email_tokens (
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    purpose VARCHAR(16) NOT NULL,
    email VARCHAR(254) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_idx ON email_tokens (expires_at);
