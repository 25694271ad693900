#!/bin/sh
# Runs once, when the compose `db` volume is initialised (docker-entrypoint-initdb.d), after
# 10-paymenter-roles.sql created the roles (that file is `python -m paymenter.dbroles
# --database paymenter`; `make deploy-sql` regenerates it). Sets the role passwords from the
# environment; psql's :'var' quoting keeps them out of the SQL text.
set -eu
: "${PAYMENTER_OWNER_PASSWORD:?set PAYMENTER_OWNER_PASSWORD in .env}"
: "${PAYMENTER_APP_PASSWORD:?set PAYMENTER_APP_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="$PAYMENTER_OWNER_PASSWORD" -v app_password="$PAYMENTER_APP_PASSWORD" <<'SQL'
ALTER ROLE paymenter_owner PASSWORD :'owner_password';
ALTER ROLE paymenter_app PASSWORD :'app_password';
SQL
