#!/usr/bin/env bash
# Run once by the postgres image when it creates the database (docker-entrypoint-initdb.d):
# the login role Grafana's read-model panels use. It may only call the functions of the
# grafana schema (20-grafana-functions.sql), which return counts over all tenants, never a
# row of the read models.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v password="$GRAFANA_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'password' CONNECTION LIMIT 10;
SQL
