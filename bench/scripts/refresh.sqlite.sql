-- One refresh as tessera runs it on SQLite (src/service/auth/refresh.rs and the storage
-- functions it calls), statement for statement: the ceiling of `tessera-bench --scenario
-- refresh`, which repeats it with each {name} filled in and feeds the lot to the sqlite3
-- shell. Each is a batch of one rotation (src/storage/rotations.rs): tessera writes the
-- rotations that arrive together as one batch, so it can pass this loop. Keep it in step with
-- the code.
SELECT t.expires_at AS t_expires_at, t.rotated_at AS t_rotated_at, s.*, u.* FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id WHERE t.token_hash = '{prev}';
BEGIN IMMEDIATE;
UPDATE refresh_tokens SET rotated_at = {now} WHERE rotated_at IS NULL AND token_hash IN (SELECT value FROM json_each('["{prev}"]')) RETURNING token_hash;
UPDATE sessions SET last_used_at = {now}, expires_at = MIN({now} + 2592000000000, max_expires_at) WHERE revoked_at IS NULL AND expires_at > {now} AND id IN (SELECT value FROM json_each('["{sid}"]')) AND user_id IN (SELECT id FROM users WHERE status = 'active') RETURNING id, expires_at;
INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) SELECT json_extract(j.value, '$[0]'), s.id, {now}, s.expires_at FROM json_each('[["{next}", "{sid}"]]') AS j JOIN sessions AS s ON s.id = json_extract(j.value, '$[1]');
COMMIT;
