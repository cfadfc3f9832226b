-- Second factors.
--
-- sessions.amr: how the sign-in that opened the session proved who it was (RFC 8176 values,
-- space-separated), carried by every access token the session issues.
ALTER TABLE sessions ADD COLUMN amr VARCHAR(32) NOT NULL DEFAULT 'pwd';

-- totp_factors: one authenticator app per account. The secret is base32, sealed with the
-- master key when one is configured; the factor counts only once confirmed_at is set (a code
-- from the app was shown); last_step is the 30-second step of the last code accepted, so no
-- code is accepted twice.
CREATE TABLE totp_factors (
    user_id VARCHAR(36) NOT NULL PRIMARY KEY,
    secret VARCHAR(200) NOT NULL,
    confirmed_at BIGINT NULL,
    last_step BIGINT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

-- recovery_codes: ten single-use codes per account, stored as SHA-256 digests (each carries
-- 80 random bits); a new set replaces the old.
CREATE TABLE recovery_codes (
    user_id VARCHAR(36) NOT NULL,
    code_hash VARCHAR(64) NOT NULL,
    used_at BIGINT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

-- mfa_tokens: a right password on an account with a second factor, waiting for that factor
-- (digest of the token handed out; single use, five minutes).
CREATE TABLE mfa_tokens (
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX mfa_tokens_expires_idx ON mfa_tokens (expires_at);
