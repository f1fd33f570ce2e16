#!/usr/bin/env bash
# MariaDB and PostgreSQL with TLS for the tests: a test CA and certificates made with openssl,
# and a SECOND MariaDB and a SECOND PostgreSQL (their own data directories and ports, on
# loopback) that present them. The distribution's servers of tests/scripts/ensure-services.sh
# are not touched; this script needs their packages (mariadb-server, postgresql).
#
# Usage: tests/scripts/tls-databases.sh start|stop|status|env
#   start    makes the certificates and data directories on first use, then starts both
#            servers (a no-op for a server that answers already)
#   stop     stops both servers (the data directories stay; `start` brings them back)
#   env      prints the `export HSF_TLS_…=…` lines the tests read (defaults match)
#
# Environment: HSF_TLS_DIR (default /tmp/hsf-tls), HSF_TLS_MYSQL_PORT (3307),
# HSF_TLS_PG_PORT (5433).
#
# Layout of $HSF_TLS_DIR (tests/src/tls_databases.rs reads the same names):
#   ca.crt              the test CA (the trust anchor of verify-ca/verify-full)
#   server.crt/.key     CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (both servers present it)
#   client.crt/.key     CN=hsf_cert, extendedKeyUsage clientAuth (client-certificate logins)
#   wrong-host.crt/.key CN=wrong.invalid, SAN DNS:wrong.invalid only (mismatch tests)
#   other-ca.crt        a second CA that signed nothing the servers present (untrusted-CA tests)
#   mariadb/, pg/       the servers' data directories, logs and pid files
#
# Both servers listen on 127.0.0.1 and 127.0.0.2: the certificate does not name 127.0.0.2, so
# connecting there is a host-name mismatch with a certificate of the trusted CA.
# Logins (all may read every database):
#   MariaDB :3307   root@127.0.0.1 without password (plain TCP allowed; the fixtures' admin)
#                   hsf_ssl / hsf-ssl-pw     REQUIRE SSL
#                   hsf_cert / hsf-cert-pw   REQUIRE X509 (a client certificate of the test CA)
#   PostgreSQL :5433 postgres on 127.0.0.1 trust (plain TCP allowed; the fixtures' admin)
#                   hsf_ssl / hsf-ssl-pw     hostssl only, scram-sha-256
#                   hsf_cert / hsf-cert-pw   hostssl, scram-sha-256 + clientcert=verify-full
#                                            (the certificate's CN must be hsf_cert)
set -euo pipefail

dir=${HSF_TLS_DIR:-/tmp/hsf-tls}
my_port=${HSF_TLS_MYSQL_PORT:-3307}
pg_port=${HSF_TLS_PG_PORT:-5433}
say() { printf '[tls-databases] %s\n' "$*" >&2; }

pg_bin() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)
  [ -n "$v" ] || return 1
  printf '/usr/lib/postgresql/%s/bin' "$v"
}

# --- certificates ----------------------------------------------------------------------------

sign() { # name subject san_or_empty eku days
  local name=$1 subj=$2 san=$3 eku=$4
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "$subj" \
    -out "$dir/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  chmod 600 "$dir/$name.key"
}

make_ca() { # name cn
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$dir/$1.key" -days 3650 -sha256 \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/$1.crt" 2>/dev/null
  chmod 600 "$dir/$1.key"
}

certificates() {
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [ -s "$dir/client.crt" ] && openssl x509 -checkend 86400 -noout -in "$dir/server.crt" >/dev/null 2>&1; then
    return 0
  fi
  say "making the test CA and certificates in $dir"
  make_ca ca "hive-smallfiles test CA"
  make_ca other-ca "hive-smallfiles other test CA"
  sign server "/CN=localhost" "DNS:localhost,IP:127.0.0.1" serverAuth
  sign wrong-host "/CN=wrong.invalid" "DNS:wrong.invalid" serverAuth
  sign client "/CN=hsf_cert" "" clientAuth
}

# --- MariaDB ---------------------------------------------------------------------------------

my_dir="$dir/mariadb"
my_sock="$my_dir/mysqld.sock"
my_ok() { mariadb --no-defaults -h 127.0.0.1 -P "$my_port" -u root -e 'SELECT 1' >/dev/null 2>&1; }

mariadb_start() {
  my_ok && return 0
  local mariadbd
  mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
  [ -x "$mariadbd" ] || { say "mariadbd is not installed (tests/scripts/ensure-services.sh installs it)"; return 1; }
  mkdir -p "$my_dir"
  install -m 0644 "$dir/ca.crt" "$my_dir/ca.crt"
  install -m 0644 "$dir/server.crt" "$my_dir/server.crt"
  install -m 0600 "$dir/server.key" "$my_dir/server.key"
  if [ ! -d "$my_dir/data/mysql" ]; then
    mkdir -p "$my_dir/data"
    chown -R mysql:mysql "$my_dir" 2>/dev/null || true
    mariadb-install-db --no-defaults --user=mysql --datadir="$my_dir/data" \
      --auth-root-authentication-method=socket >"$my_dir/install.log" 2>&1 ||
      { say "mariadb-install-db failed (see $my_dir/install.log)"; return 1; }
  fi
  chown -R mysql:mysql "$my_dir" 2>/dev/null || true
  setsid "$mariadbd" --no-defaults --user=mysql --datadir="$my_dir/data" \
    --port="$my_port" --bind-address=127.0.0.1,127.0.0.2 --socket="$my_sock" \
    --pid-file="$my_dir/mysqld.pid" --log-error="$my_dir/error.log" \
    --skip-name-resolve --innodb-buffer-pool-size=32M --performance-schema=OFF \
    --ssl-ca="$my_dir/ca.crt" --ssl-cert="$my_dir/server.crt" --ssl-key="$my_dir/server.key" \
    </dev/null >/dev/null 2>&1 9>&- &
  for _ in $(seq 1 120); do
    [ -S "$my_sock" ] && mariadb --no-defaults -S "$my_sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.25
  done
  if true; then
    mariadb --no-defaults -S "$my_sock" -u root <<'SQL' || { say "creating the MariaDB logins failed"; return 1; }
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'hsf_ssl'@'%' IDENTIFIED BY 'hsf-ssl-pw' REQUIRE SSL;
CREATE USER IF NOT EXISTS 'hsf_cert'@'%' IDENTIFIED BY 'hsf-cert-pw' REQUIRE X509;
GRANT SELECT ON *.* TO 'hsf_ssl'@'%';
GRANT SELECT ON *.* TO 'hsf_cert'@'%';
FLUSH PRIVILEGES;
SQL
  fi
  my_ok || { say "MariaDB with TLS did not start on 127.0.0.1:$my_port (see $my_dir/error.log)"; tail -n 20 "$my_dir/error.log" >&2 || true; return 1; }
}

mariadb_stop() {
  [ -f "$my_dir/mysqld.pid" ] || return 0
  local pid
  pid=$(cat "$my_dir/mysqld.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
}

# --- PostgreSQL ------------------------------------------------------------------------------

pg_dir="$dir/pg"
pg_ok() { psql -X -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

postgres_start() {
  pg_ok && return 0
  local bin
  bin=$(pg_bin) || { say "PostgreSQL is not installed (tests/scripts/ensure-services.sh installs it)"; return 1; }
  mkdir -p "$pg_dir"
  chown postgres:postgres "$pg_dir" 2>/dev/null || true
  if [ ! -f "$pg_dir/data/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >"$pg_dir/initdb.log" 2>&1 ||
      { say "initdb failed (see $pg_dir/initdb.log)"; return 1; }
  fi
  install -o postgres -g postgres -m 0644 "$dir/ca.crt" "$pg_dir/data/ca.crt"
  install -o postgres -g postgres -m 0644 "$dir/server.crt" "$pg_dir/data/server.crt"
  install -o postgres -g postgres -m 0600 "$dir/server.key" "$pg_dir/data/server.key"
  cat >"$pg_dir/data/postgresql.auto.conf" <<EOF
port = $pg_port
listen_addresses = '127.0.0.1,127.0.0.2'
unix_socket_directories = '$pg_dir'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
password_encryption = 'scram-sha-256'
fsync = off
shared_buffers = 16MB
max_connections = 60
EOF
  cat >"$pg_dir/data/pg_hba.conf" <<EOF
local   all  all                     trust
host    all  postgres  127.0.0.1/32  trust
hostssl all  hsf_ssl   127.0.0.0/8   scram-sha-256
hostssl all  hsf_cert  127.0.0.0/8   scram-sha-256 clientcert=verify-full
EOF
  chown postgres:postgres "$pg_dir/data/postgresql.auto.conf" "$pg_dir/data/pg_hba.conf"
  # 9>&-: the server must not inherit (and hold forever) the start lock.
  as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 start >/dev/null 9>&- ||
    { say "PostgreSQL with TLS did not start (see $pg_dir/server.log)"; tail -n 20 "$pg_dir/server.log" >&2 || true; return 1; }
  psql -X -v ON_ERROR_STOP=1 -h "$pg_dir" -p "$pg_port" -U postgres -d postgres -q >/dev/null <<'SQL' || { say "creating the PostgreSQL logins failed"; return 1; }
SET client_min_messages = warning;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hsf_ssl') THEN CREATE ROLE hsf_ssl LOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hsf_cert') THEN CREATE ROLE hsf_cert LOGIN; END IF;
END $$;
ALTER ROLE hsf_ssl PASSWORD 'hsf-ssl-pw';
ALTER ROLE hsf_cert PASSWORD 'hsf-cert-pw';
GRANT pg_read_all_data TO hsf_ssl, hsf_cert;
SQL
  pg_ok || { say "PostgreSQL with TLS is not reachable on 127.0.0.1:$pg_port"; return 1; }
}

postgres_stop() {
  local bin
  bin=$(pg_bin) || return 0
  [ -f "$pg_dir/data/postmaster.pid" ] || return 0
  as_postgres "$bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

print_env() {
  cat <<EOF
export HSF_TLS_DIR=$dir
export HSF_TLS_MYSQL_URL=mysql://root@127.0.0.1:$my_port
export HSF_TLS_PG_URL=postgres://postgres@127.0.0.1:$pg_port
EOF
}

case "${1:-start}" in
  start)
    # Test processes start this script concurrently: one start at a time (the servers are
    # started with the lock's descriptor closed).
    mkdir -p "$dir"
    exec 9>"$dir/.start.lock"
    flock -w 60 9 || say "the start lock is still held after 60 s; starting anyway"
    certificates
    mariadb_start
    postgres_start
    ;;
  stop)
    mariadb_stop
    postgres_stop
    ;;
  status)
    my_ok && echo "mariadb 127.0.0.1:$my_port: up" || echo "mariadb 127.0.0.1:$my_port: down"
    pg_ok && echo "postgresql 127.0.0.1:$pg_port: up" || echo "postgresql 127.0.0.1:$pg_port: down"
    my_ok && pg_ok
    ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 64
    ;;
esac
