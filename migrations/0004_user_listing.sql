-- Listing and searching users at scale: every query is a range over an index.
-- {binary_collation} makes the new key columns compare byte by byte (PostgreSQL `COLLATE "C"`;
-- SQLite and the MySQL tables already compare so), so a prefix is exactly a range of keys.

-- The key of `sort=username`: the lower-cased username, or the e-mail address for accounts
-- without one, so the order has no NULLs to step around.
ALTER TABLE users ADD COLUMN sort_name VARCHAR(254) {binary_collation} NULL;
UPDATE users SET sort_name = COALESCE(username_lower, email_lower);
CREATE INDEX users_sort_name_idx ON users (sort_name, id);

-- Filters by role or status, newest or oldest first, without walking every account.
CREATE INDEX users_role_created_idx ON users (role, created_at, id);
CREATE INDEX users_status_created_idx ON users (status, created_at, id);

-- Prefix search: one row per distinct lower-cased username, e-mail, first, last and display
-- name of each account.
CREATE TABLE user_search_keys (
    search_key VARCHAR(254) {binary_collation} NOT NULL,
    user_id VARCHAR(36) NOT NULL,
    PRIMARY KEY (search_key, user_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX user_search_keys_user_idx ON user_search_keys (user_id, search_key);

INSERT INTO user_search_keys (search_key, user_id)
    SELECT DISTINCT k, id FROM (
        SELECT username_lower AS k, id FROM users WHERE username_lower IS NOT NULL
        UNION SELECT email_lower, id FROM users WHERE email_lower IS NOT NULL
        UNION SELECT LOWER(first_name), id FROM users WHERE first_name IS NOT NULL
        UNION SELECT LOWER(last_name), id FROM users WHERE last_name IS NOT NULL
        UNION SELECT LOWER(display_name), id FROM users WHERE display_name IS NOT NULL
    ) backfill;
