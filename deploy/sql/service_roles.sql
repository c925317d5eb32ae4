-- One PostgreSQL role per service, each the only writer of its own database (no service reads
-- another's): the roles the Secret's store URLs name (deploy/k8s/base/secret.example.yaml).
-- Run it once as a superuser, after deploy/sql/create_databases.sql, then bi_readonly_role.sql in the
-- projections database with -v owner=projections:
--
--   psql "$ADMIN_DB" -v opportunity_password='…' -v projections_password='…' \
--        -v reminders_password='…' -f deploy/sql/service_roles.sql
--
-- Optional names (defaults in brackets): opportunity_role [opportunity], projections_role
-- [projections], reminders_role [reminders], eventstore_db [eventstore], projections_db
-- [projections], reminders_db [reminders].
--
-- What a service role gets: LOGIN, nothing cluster-wide (no superuser, no CREATEDB, no
-- CREATEROLE, no replication, no RLS bypass); CONNECT and TEMPORARY on its own database and
-- USAGE and CREATE on its public schema (its migrations create and alter its tables, a
-- projections rebuild drops and recreates them). Nobody else connects: PUBLIC loses CONNECT
-- on the three databases and CREATE on their public schemas.
--
-- Idempotent: running it again sets the passwords and changes nothing else.

\set ON_ERROR_STOP on
\if :{?opportunity_role}
\else
  \set opportunity_role opportunity
\endif
\if :{?projections_role}
\else
  \set projections_role projections
\endif
\if :{?reminders_role}
\else
  \set reminders_role reminders
\endif
\if :{?eventstore_db}
\else
  \set eventstore_db eventstore
\endif
\if :{?projections_db}
\else
  \set projections_db projections
\endif
\if :{?reminders_db}
\else
  \set reminders_db reminders
\endif

SELECT :{?opportunity_password} AND :{?projections_password} AND :{?reminders_password}
  AS passwords_given \gset
\if :passwords_given
\else
  DO $$ BEGIN RAISE EXCEPTION 'service_roles.sql: give -v opportunity_password=… -v projections_password=… -v reminders_password=…'; END $$;
\endif

-- role, its password, its database
CREATE TEMPORARY TABLE oppstream_service (role name, password text, database name);
INSERT INTO oppstream_service VALUES
  (:'opportunity_role', :'opportunity_password', :'eventstore_db'),
  (:'projections_role', :'projections_password', :'projections_db'),
  (:'reminders_role', :'reminders_password', :'reminders_db');

SELECT format('CREATE ROLE %I', role) FROM oppstream_service
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) \gexec
SELECT format(
  'ALTER ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
  role, password
) FROM oppstream_service \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', database),
       format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', database, role)
FROM oppstream_service \gexec
SELECT format('COMMENT ON ROLE %I IS %L', role, 'oppstream: the service that owns database ' || database)
FROM oppstream_service \gexec

\connect :"eventstore_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"opportunity_role";

\connect :"projections_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"projections_role";

\connect :"reminders_db"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"reminders_role";
