-- A login for a BI tool, member of the read-only group role oppstream_bi_read (SPEC §4.3):
-- SELECT on the projections database's bi_* tables and views, in read-only transactions.
-- Run it in the projections database after bi_readonly_role.sql, with the tool's password:
--
--   psql "$PROJECTIONS_DB" -v bi_password='…' -f deploy/sql/bi_login_role.sql
--
-- bi_login names the role (default bi_reader); one login per tool keeps the audit trail
-- readable. Idempotent: running it again sets the password.

\set ON_ERROR_STOP on
\if :{?bi_login}
\else
  \set bi_login bi_reader
\endif
\if :{?bi_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'bi_login_role.sql: give -v bi_password=…'; END $$;
\endif

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'bi_login') AS create_login \gset
\if :create_login
  CREATE ROLE :"bi_login" LOGIN;
\endif
ALTER ROLE :"bi_login" LOGIN PASSWORD :'bi_password' NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS;
GRANT oppstream_bi_read TO :"bi_login";
ALTER ROLE :"bi_login" SET default_transaction_read_only = on;
