-- An address a user asked to change to: it becomes the account's address only when the link
-- mailed to it is followed. Not unique: uniqueness is checked when it is asked for and enforced
-- by users_email_lower_key when it is confirmed.
ALTER TABLE users ADD COLUMN pending_email VARCHAR(254) NULL;
