#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive: real PostgreSQL
# clients (psycopg2, the JDBC driver, pgbench) and PostgreSQL itself. Safe to
# run again: packages already installed are skipped, and `apt-get update`
# runs at most once, only when something is missing. Works as root, uses sudo
# otherwise.
set -euo pipefail

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
# Always wanted: the client libraries the compatibility tests use.
for pkg in python3-psycopg2 libpostgresql-jdbc-java pgbouncer; do
  installed "$pkg" || missing+=("$pkg")
done
# Wanted only when the machine lacks the program (it may come from elsewhere).
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-client)
if [ -z "${PG_BIN:-}" ] && ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
# The atomicity fuzzer cuts a shard off the network with a namespace and a veth pair.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi

# Deduplicate (postgresql-client may be listed twice).
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-test-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
