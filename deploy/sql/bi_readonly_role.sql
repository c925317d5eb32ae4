-- Read-only access for BI tools to the projections database (SPEC §4.3), PostgreSQL.
--
-- Run it once in the projections database as a superuser (or the database owner with the
-- right to create event triggers), before or after the service first started:
--
--   psql "$PROJECTIONS_DB" -v owner=oppstream -f deploy/sql/bi_readonly_role.sql
--
--   owner        the role the projections service connects as (it creates the tables);
--                default `oppstream`; `projections` with deploy/sql/service_roles.sql
--
-- What BI tools get: SELECT on the `bi_*` tables and views only (bi_opportunity,
-- bi_stage_visit, bi_event, bi_opportunity_version, bi_customer, bi_key_person,
-- bi_pipeline_stage, bi_target_change, bi_competition, bi_deferral, bi_funnel, bi_dwell,
-- bi_win_rate, bi_target, bi_competition_standing and any bi_* added later), in read-only
-- transactions; nothing on the service's
-- bookkeeping (projection_*, the Alembic version table). The grants survive
-- `oppstream projections rebuild`, which drops and recreates the tables: default privileges
-- give every relation the owner creates to the role, and an event trigger takes them back
-- from relations whose name does not start with bi_ (default privileges cannot filter by
-- name). The rebuild also copies the grants it finds onto the new tables.
--
-- Idempotent: running it again changes nothing.

\set ON_ERROR_STOP on
\if :{?owner}
\else
  \set owner oppstream
\endif

-- The group role BI users are members of: no login, read only.
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'oppstream_bi_read') AS create_group \gset
\if :create_group
  CREATE ROLE oppstream_bi_read NOLOGIN;
\endif
ALTER ROLE oppstream_bi_read SET default_transaction_read_only = on;
COMMENT ON ROLE oppstream_bi_read IS 'oppstream BI: SELECT on the projections'' bi_* tables and views';

GRANT CONNECT ON DATABASE :"DBNAME" TO oppstream_bi_read;
GRANT USAGE ON SCHEMA public TO oppstream_bi_read;

-- What exists already.
DO $$
DECLARE relation record;
BEGIN
  FOR relation IN
    SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p')
  LOOP
    IF relation.relname LIKE 'bi\_%' THEN
      EXECUTE format('GRANT SELECT ON public.%I TO oppstream_bi_read', relation.relname);
    ELSE
      EXECUTE format('REVOKE ALL ON public.%I FROM oppstream_bi_read', relation.relname);
    END IF;
  END LOOP;
END
$$;

-- What the service creates later (migrations, rebuilds).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO oppstream_bi_read;

CREATE OR REPLACE FUNCTION oppstream_bi_read_only_bi() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE created record;
BEGIN
  FOR created IN
    SELECT DISTINCT c.relname FROM pg_event_trigger_ddl_commands() d
    JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'v', 'm', 'p')
      AND n.nspname = 'public'
  LOOP
    -- A rename (a rebuild's rebuild_bi_x → bi_x) comes here too.
    IF created.relname LIKE 'bi\_%' THEN
      EXECUTE format('GRANT SELECT ON public.%I TO oppstream_bi_read', created.relname);
    ELSE
      EXECUTE format('REVOKE ALL ON public.%I FROM oppstream_bi_read', created.relname);
    END IF;
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS oppstream_bi_read_only_bi;
CREATE EVENT TRIGGER oppstream_bi_read_only_bi ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'CREATE VIEW', 'ALTER TABLE', 'SELECT INTO')
  EXECUTE FUNCTION oppstream_bi_read_only_bi();

-- The login a BI tool connects as: deploy/sql/bi_login_role.sql.
