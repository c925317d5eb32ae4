-- docker-compose init: the BI read-only role lives in the projections database.
\connect projections
\i /deploy/sql/bi_readonly_role.sql
