-- The CA's state (everything behind the Store and HostStore traits).
-- Each entity is the same JSON the embedded store keeps, in `body`, as
-- text: compare-and-swap compares these exact bytes, as the embedded
-- store does (and text keeps a \u0000 escape jsonb would refuse); cast
-- `body::jsonb` to query it by hand. The other columns are derived from
-- it at every write, for pruning and indexes, never read back as truth.

CREATE TABLE invites (
    key text PRIMARY KEY,          -- SHA-256 of the link's token
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE credentials (
    user_name text PRIMARY KEY,
    body text NOT NULL
);

CREATE TABLE invited_roles (
    user_name text PRIMARY KEY,
    body text NOT NULL
);

CREATE TABLE requests (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    -- Pruned with the expired secrets, not kept for the retention time.
    never_confirmed boolean NOT NULL,
    -- Waiting for approvers: listed from a partial index.
    pending boolean NOT NULL
);
CREATE INDEX requests_pending ON requests (key) WHERE pending;
CREATE INDEX requests_ends_at ON requests (ends_at);

CREATE TABLE revocations (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE decisions (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE sessions (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE ceremonies (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE blocked_users (
    user_name text PRIMARY KEY
);

-- Serials are u64 stored bit for bit in a bigint.
CREATE TABLE revoked_serials (
    serial bigint PRIMARY KEY,
    valid_before bigint NOT NULL
);

-- One row: the KRL version, bumped in the transaction that changes
-- revoked_serials.
CREATE TABLE krl_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL
);
INSERT INTO krl_version (version) VALUES (1);

CREATE TABLE host_tokens (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE host_challenges (
    key text PRIMARY KEY,
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE hosts (
    key text PRIMARY KEY,          -- the host name
    body text NOT NULL,
    ends_at bigint NOT NULL
);

CREATE TABLE revoked_host_keys (
    fingerprint text PRIMARY KEY,
    key_line text NOT NULL
);
