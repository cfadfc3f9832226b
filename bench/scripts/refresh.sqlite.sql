-- One refresh as tessera runs it on SQLite (src/service/auth/refresh.rs and the storage
-- functions it calls), statement for statement: the ceiling of `tessera-bench --scenario
-- refresh`, which repeats it with each {name} filled in and feeds the lot to the sqlite3
-- shell. Keep it in step with the code.
SELECT session_id, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = '{prev}';
SELECT * FROM sessions WHERE id = '{sid}';
SELECT * FROM users WHERE id = '{uid}';
BEGIN IMMEDIATE;
UPDATE refresh_tokens SET rotated_at = {now} WHERE token_hash = '{prev}' AND rotated_at IS NULL;
UPDATE sessions SET last_used_at = {now}, expires_at = {now} + 2592000000000 WHERE id = '{sid}' AND revoked_at IS NULL AND expires_at > {now};
INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ('{next}', '{sid}', {now}, {now} + 2592000000000);
COMMIT;
