-- Wallets on a double-entry ledger. Amounts are integers in the currency's minor unit. A
-- wallet's balance always equals the sum of its entries, and entries are never updated or
-- deleted: a wallet that is closed is marked deleted, its history kept.
CREATE TABLE wallets (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    owner_id VARCHAR(36) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    description VARCHAR(200) NULL,
    status VARCHAR(16) NOT NULL,
    balance BIGINT NOT NULL,
    held BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT NULL
) {table_options};

CREATE INDEX wallets_owner_idx ON wallets (owner_id, id);

-- A movement of money between two wallets of one currency: its two entries cancel.
CREATE TABLE transfers (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    from_wallet_id VARCHAR(36) NOT NULL,
    to_wallet_id VARCHAR(36) NOT NULL,
    amount BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    description VARCHAR(200) NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (from_wallet_id) REFERENCES wallets (id),
    FOREIGN KEY (to_wallet_id) REFERENCES wallets (id)
) {table_options};

CREATE TABLE ledger_entries (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    wallet_id VARCHAR(36) NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    transfer_id VARCHAR(36) NULL,
    description VARCHAR(200) NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    FOREIGN KEY (transfer_id) REFERENCES transfers (id)
) {table_options};

CREATE INDEX ledger_entries_wallet_idx ON ledger_entries (wallet_id, id);

-- One row per (caller, Idempotency-Key): written first in the transaction that does the work,
-- so a second request with the key waits for the first and then replays what it made.
CREATE TABLE idempotency_keys (
    actor_id VARCHAR(36) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    request_hash VARCHAR(64) NOT NULL,
    result_id VARCHAR(36) NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (actor_id, idem_key)
) {table_options};

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
