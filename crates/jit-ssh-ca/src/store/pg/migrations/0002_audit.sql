-- The audit log (the AuditLog trait): one hash chain shared by every
-- replica. `record` is the sealed record exactly as the embedded log
-- stores it (JSON text with its hash; an export is these bytes, one per
-- line); the other columns are derived from it at append, for the
-- queries, and never read back as truth: `verify` reads `record` only.

CREATE TABLE audit_records (
    seq bigint PRIMARY KEY,
    -- Unix nanoseconds of the record's time: never less than the record
    -- before it (whatever replica wrote that), so a time range is a seq
    -- range.
    time_ns bigint NOT NULL,
    kind text NOT NULL,
    user_name text,
    host text,
    account text,
    grant_id text,
    record text NOT NULL
);

CREATE INDEX audit_records_time ON audit_records (time_ns, seq);
CREATE INDEX audit_records_user ON audit_records (user_name, seq) WHERE user_name IS NOT NULL;
CREATE INDEX audit_records_host ON audit_records (host, seq) WHERE host IS NOT NULL;
CREATE INDEX audit_records_grant ON audit_records (grant_id, seq) WHERE grant_id IS NOT NULL;

-- Serials a record concerns (the one issued, or those revoked), stored
-- bit for bit as bigint like revoked_serials.serial.
CREATE TABLE audit_serials (
    serial bigint NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (serial, seq)
);

-- The chain's head: one row, locked (SELECT … FOR UPDATE) by each
-- appending transaction, so appends from all replicas take turns and
-- each record's prev_hash is the record really before it.
CREATE TABLE audit_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL,
    time_ns bigint NOT NULL
);

INSERT INTO audit_head (seq, hash, time_ns)
VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000', 0);
