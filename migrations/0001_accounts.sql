-- Accounts, sessions, refresh tokens and signing keys.
-- Portable: VARCHAR, TEXT and BIGINT only; instants are microseconds since the epoch (UTC).
-- {table_options} is the MySQL table suffix (InnoDB, utf8mb4, binary collation) and empty elsewhere.

CREATE TABLE users (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    username VARCHAR(32) NULL,
    username_lower VARCHAR(32) NULL,
    email VARCHAR(254) NULL,
    email_lower VARCHAR(254) NULL,
    email_verified_at BIGINT NULL,
    phone VARCHAR(16) NULL,
    first_name VARCHAR(100) NULL,
    last_name VARCHAR(100) NULL,
    display_name VARCHAR(100) NULL,
    role VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    metadata TEXT NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT NULL
) {table_options};

CREATE UNIQUE INDEX users_username_lower_key ON users (username_lower);
CREATE UNIQUE INDEX users_email_lower_key ON users (email_lower);
CREATE INDEX users_created_at_idx ON users (created_at, id);
CREATE INDEX users_role_status_idx ON users (role, status);

CREATE TABLE sessions (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    max_expires_at BIGINT NOT NULL,
    revoked_at BIGINT NULL,
    user_agent VARCHAR(512) NULL,
    ip VARCHAR(64) NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    session_id VARCHAR(36) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT NULL,
    FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
    kid VARCHAR(64) NOT NULL PRIMARY KEY,
    algorithm VARCHAR(16) NOT NULL,
    secret_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT NULL
) {table_options};

-- One row per invariant that spans many rows; updating the row serialises the writers
-- that must see each other (for example, "there is always an active owner").
CREATE TABLE guards (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL
) {table_options};

INSERT INTO guards (name, version) VALUES ('owners', 0);
