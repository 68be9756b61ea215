ALTER TABLE accounts ADD COLUMN profile JSONB;
INSERT INTO accounts (email, balance, profile)
VALUES ('treasury@example.com', 1000, '{"role": "treasury"}');
