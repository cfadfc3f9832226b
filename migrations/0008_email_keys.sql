-- E-mail addresses are compared by NFC and full Unicode case folding from this version on.
-- The SQL here only marks the step; the keys of rows written before (email_lower, the sort key
-- of accounts without a username, the address's search key) are recomputed in Rust
-- (storage::users::rekey_emails) in the same transaction, as no SQL dialect folds portably.
UPDATE users SET email_lower = email_lower WHERE 1 = 0;
