-- Runs once, when the postgres container initialises an empty data volume
-- (mounted into /docker-entrypoint-initdb.d; psql runs it as the superuser).
--
-- booking_owner owns the database and the schema: the service connects as it through
-- BOOKING_ADMIN_DATABASE_URL to create tables, grants and row-level-security policies.
-- booking_app is the runtime role (BOOKING_DATABASE_URL): not owner, not superuser, no BYPASSRLS.
-- Passwords come from the container's environment (psql 15+ \getenv), never from this file.

\set ON_ERROR_STOP on
\getenv owner_password BOOKING_OWNER_PASSWORD
\getenv app_password BOOKING_APP_PASSWORD

CREATE ROLE booking_owner LOGIN CREATEROLE PASSWORD :'owner_password';
CREATE ROLE booking_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';

CREATE DATABASE booking OWNER booking_owner;
REVOKE ALL ON DATABASE booking FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE booking TO booking_app;

\connect booking
ALTER SCHEMA public OWNER TO booking_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
