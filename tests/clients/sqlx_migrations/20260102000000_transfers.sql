-- Money moved between accounts; a script of several statements.
CREATE TABLE transfers (
    id BIGSERIAL PRIMARY KEY,
    from_id BIGINT NOT NULL REFERENCES accounts (id),
    to_id BIGINT NOT NULL REFERENCES accounts (id),
    amount BIGINT NOT NULL CHECK (amount > 0)
);
CREATE INDEX transfers_from ON transfers (from_id);
CREATE INDEX transfers_to ON transfers (to_id);
