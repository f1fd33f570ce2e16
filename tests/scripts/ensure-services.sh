#!/usr/bin/env bash
# Makes sure what the tests and the demo need is installed and running on this machine:
# MariaDB and PostgreSQL (with root/postgres reachable on 127.0.0.1 without a password;
# PostgreSQL with pg_stat_statements preloaded, whose counters the MetaStore query-count tests
# read — adding it restarts PostgreSQL once), Prometheus, promtool and Alertmanager. Installs
# Debian packages when missing and we are root.
# Usage: tests/scripts/ensure-services.sh [--no-postgres] [--no-prometheus]
set -euo pipefail

want_pg=1 want_prom=1
for a in "$@"; do
  case "$a" in
    --no-postgres) want_pg=0 ;;
    --no-prometheus) want_prom=0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

say() { printf '[services] %s\n' "$*" >&2; }

# Package managers' output goes here, not to the console; its last lines are shown on failure.
install_log=${HSF_INSTALL_LOG:-${TMPDIR:-/tmp}/hive-smallfiles-install.log}
quietly() {
  if ! "$@" >>"$install_log" 2>&1; then
    say "failed: $* (last lines of $install_log follow)"
    tail -n 20 "$install_log" >&2
    return 1
  fi
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    say "missing packages: $* (run as root or install them: apt-get install $*)"
    return 1
  fi
  say "installing Debian packages $* (a minute or two; output in $install_log)"
  if [ ! -f /var/lib/apt/periodic/hsf-updated ] || [ -n "$(find /var/lib/apt/lists -maxdepth 0 -mmin +720 2>/dev/null)" ]; then
    quietly apt-get update -qq && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/hsf-updated
  fi
  DEBIAN_FRONTEND=noninteractive quietly apt-get install -y -qq "$@"
}

pkgs=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || pkgs+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || pkgs+=(mariadb-client)
if [ "$want_pg" = 1 ]; then
  command -v psql >/dev/null 2>&1 || pkgs+=(postgresql)
fi
if [ "$want_prom" = 1 ]; then
  command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || pkgs+=(prometheus-alertmanager)
fi
if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi

mariadb_ok() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
if ! mariadb_ok; then
  say "starting MariaDB"
  if [ ! -d /var/lib/mysql/mysql ] && command -v mariadb-install-db >/dev/null; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null 2>&1 || true
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do mariadb_ok && break; sleep 0.5; done
  if ! mariadb_ok; then
    # A fresh Debian install authenticates root by unix socket: allow TCP root without a
    # password for these throwaway test databases.
    mariadb -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" >/dev/null 2>&1 || true
  fi
  mariadb_ok || { say "MariaDB is not reachable as root@127.0.0.1:3306"; exit 1; }
fi
say "MariaDB ready"

if [ "$want_pg" = 1 ]; then
  pg_ok() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; }
  if ! pg_ok; then
    say "starting PostgreSQL"
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    if [ -n "$ver" ]; then
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
      for _ in $(seq 1 60); do pg_ok && break; sleep 0.5; done
      if ! pg_ok && [ "$(id -u)" = 0 ]; then
        hba="/etc/postgresql/$ver/main/pg_hba.conf"
        if ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
          sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
          pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
          sleep 1
        fi
      fi
    fi
    pg_ok || { say "PostgreSQL is not reachable as postgres@127.0.0.1:5432"; exit 1; }
  fi
  pg() { psql -XAtq -h 127.0.0.1 -p 5432 -U postgres -d postgres -c "$1"; }
  preload=$(pg 'SHOW shared_preload_libraries')
  case ",$preload," in
    *,pg_stat_statements,*|*", pg_stat_statements,"*) ;;
    *)
      ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
      if [ -n "$ver" ]; then
        say "preloading pg_stat_statements (restarts PostgreSQL $ver)"
        pg "ALTER SYSTEM SET shared_preload_libraries = '${preload:+$preload,}pg_stat_statements'"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main restart >/dev/null 2>&1 || true
        for _ in $(seq 1 60); do pg_ok && break; sleep 0.5; done
      else
        say "cannot restart PostgreSQL here: add pg_stat_statements to shared_preload_libraries"
      fi
      ;;
  esac
  pg 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null 2>&1 || true
  say "PostgreSQL ready"
fi
