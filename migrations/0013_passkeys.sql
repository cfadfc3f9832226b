-- Passkeys (WebAuthn credentials).
--
-- passkeys: an account's registered credentials. credential_key is the SHA-256 digest (hex) of
-- the credential id, which is unique across accounts (an id registered twice is refused);
-- credential is the verifying state as webauthn-rs keeps it (public key, signature counter,
-- backup flags), JSON; public keys are not secrets, so it is not sealed.
CREATE TABLE passkeys (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    credential_key VARCHAR(64) NOT NULL,
    name VARCHAR(200) NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE UNIQUE INDEX passkeys_credential_key ON passkeys (credential_key);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- webauthn_challenges: a WebAuthn ceremony begun and not yet finished, kept in the database so
-- that any node can finish what another began. id_hash is the digest of the challenge id
-- handed out; purpose is register, sign_in (a discoverable passkey, no account yet), second_step
-- (after a right password: mfa_token_hash is that step's token) or step_up (proving a factor
-- to change factors); state is webauthn-rs's ceremony state, JSON. Single use, five minutes.
CREATE TABLE webauthn_challenges (
    id_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    purpose VARCHAR(16) NOT NULL,
    user_id VARCHAR(36) NULL,
    mfa_token_hash VARCHAR(64) NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) {table_options};

CREATE INDEX webauthn_challenges_expires_idx ON webauthn_challenges (expires_at);
CREATE INDEX webauthn_challenges_user_idx ON webauthn_challenges (user_id, purpose);
