-- Credentials that can be revoked, and no key material in the database.
--
-- `access_version` is carried by every access token and checked on every request; a password
-- reset or change increments it, so tokens issued before stop working. Adding a column with a
-- constant default rewrites nothing (PostgreSQL 11+), so this takes its lock only briefly.
ALTER TABLE users ADD COLUMN access_version bigint NOT NULL DEFAULT 0;

-- Until now a generated signing secret was kept here in plain text; keys now live only in
-- configuration (or, for the local default, in a 0600 file under the data directory).
DELETE FROM settings WHERE key = 'jwt_secret';
