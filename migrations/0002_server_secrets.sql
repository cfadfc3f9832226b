-- Secrets every node must share, generated on first start (e.g. the key that derives a
-- rotated refresh token's successor, so a racing duplicate refresh gets the same pair).
CREATE TABLE server_secrets (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    secret VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL
) {table_options};
