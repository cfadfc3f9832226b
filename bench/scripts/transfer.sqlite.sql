-- One transfer in a transaction of its own, as tessera runs it on SQLite when it runs one alone
-- (src/service/transfers.rs, booking.rs and the storage functions they call), statement for
-- statement: the ceiling of `tessera-bench --scenario transfers`, which repeats it with each
-- {name} filled in and feeds the lot to the sqlite3 shell. Keep it in step with the code.
-- Under load tessera writes transfers that arrive together as one transaction
-- (src/service/transfer_batch.rs), which is how it passes this ceiling.
BEGIN IMMEDIATE;
INSERT INTO idempotency_keys (actor_id, idem_key, request_hash, result_id, created_at) VALUES ('{actor}', '{idem}', '0f3a9c1d2e4b5a6978c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6', '{tid}', {now});
SELECT id, owner_id, currency, kind, description, status, balance, held, created_at, updated_at FROM wallets WHERE id IN ('{src}', '{dst}') AND deleted_at IS NULL ORDER BY id;
UPDATE wallets SET balance = balance + CASE WHEN id = '{src}' THEN -{amount} ELSE {amount} END, updated_at = {now} WHERE id IN ('{src}', '{dst}') AND deleted_at IS NULL AND balance + CASE WHEN id = '{src}' THEN -{amount} ELSE {amount} END BETWEEN held AND 1000000000000000;
INSERT INTO transfers (id, from_wallet_id, to_wallet_id, amount, currency, description, created_at) VALUES ('{tid}', '{src}', '{dst}', {amount}, 'USD', NULL, {now});
INSERT INTO ledger_entries (id, wallet_id, amount, balance_after, kind, transfer_id, description, created_at) VALUES ('{e1}', '{src}', -{amount}, (SELECT balance FROM wallets WHERE id = '{src}'), 'transfer_out', '{tid}', NULL, {now}), ('{e2}', '{dst}', {amount}, (SELECT balance FROM wallets WHERE id = '{dst}'), 'transfer_in', '{tid}', NULL, {now});
INSERT INTO audit_events (id, type, actor_id, user_id, ip, user_agent, detail, created_at) VALUES ('{ev}', 'wallet.transfer', '{actor}', '{actor}', '127.0.0.1', NULL, '{"amount":1,"currency":"USD","from_wallet_id":"019a0000-0000-7000-8000-000000000000","to_wallet_id":"019a0000-0000-7000-8000-000000000001","transfer_id":"019a0000-0000-7000-8000-000000000002"}', {now});
COMMIT;
SELECT id, from_wallet_id, to_wallet_id, amount, currency, description, created_at FROM transfers WHERE id = '{tid}';
