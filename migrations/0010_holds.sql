-- Holds: two-phase transfers. A pending hold reserves money in the payer's wallet (counted in
-- wallets.held); capturing it makes a transfer of up to its amount and releases the rest;
-- voiding or expiry releases it all. Exactly one of these ends a hold.
CREATE TABLE holds (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    from_wallet_id VARCHAR(36) NOT NULL,
    to_wallet_id VARCHAR(36) NOT NULL,
    amount BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    status VARCHAR(16) NOT NULL,
    captured_amount BIGINT NULL,
    transfer_id VARCHAR(36) NULL,
    description VARCHAR(200) NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (from_wallet_id) REFERENCES wallets (id),
    FOREIGN KEY (to_wallet_id) REFERENCES wallets (id)
) {table_options};

CREATE INDEX holds_pending_idx ON holds (status, expires_at);
CREATE INDEX holds_from_idx ON holds (from_wallet_id, status);
