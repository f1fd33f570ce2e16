#!/usr/bin/env bash
# A real MIT Kerberos KDC on loopback for the tests: realm HSF.TEST, its own krb5.conf, kdc.conf,
# database, principals and keytabs, all in one directory. Installs Debian's krb5-kdc,
# krb5-admin-server and krb5-user when missing (as root).
#
# Usage: tests/scripts/kdc.sh start|stop|restart|status|env|kadmin QUERY
#   start    creates the realm on first use, then starts krb5kdc (a no-op when it runs)
#   stop     stops krb5kdc (the realm stays; `start` brings the same KDC back)
#   env      prints `export KRB5_CONFIG=…` for a shell
#   kadmin   runs `kadmin.local -q QUERY` on the realm (e.g. re-key a principal)
#
# Environment: HSF_KDC_DIR (default /tmp/hsf-kdc), HSF_KDC_PORT (default 18088). Tests that
# stop the KDC or change principals run their own instance with another directory and port
# (tests/src/kdc.rs `Kdc::private`), so that the shared one stays as it is.
#
# Layout of $HSF_KDC_DIR (tests/src/kdc.rs reads the same names):
#   krb5.conf         client configuration (KRB5_CONFIG), realm HSF.TEST at 127.0.0.1:$port,
#                     dns lookups off, rdns off, forwardable, renewable 1 d
#   kdc.conf, db/     the KDC's own (KRB5_KDC_PROFILE)
#   hsf.keytab        hsf/localhost@HSF.TEST: the exporter's and agent's login (10 h tickets)
#   short.keytab      hsf-short@HSF.TEST: 2-minute tickets, renewable for 10 minutes (renewal tests)
#   tiny.keytab       hsf-tiny@HSF.TEST: 20-second tickets (renewal and expiry tests that must be quick)
#   other.keytab      hsf-other@HSF.TEST: a principal the servers do not authorize
#   http.keytab       HTTP/localhost@HSF.TEST: SPNEGO acceptor of the WebHDFS test server
#   hive.keytab       hive/localhost@HSF.TEST: Spark's Kerberized Thrift Server
#   kdc.pid, kdc.log  the running krb5kdc
set -euo pipefail

dir=${HSF_KDC_DIR:-/tmp/hsf-kdc}
port=${HSF_KDC_PORT:-18088}
realm=HSF.TEST
say() { printf '[kdc] %s\n' "$*" >&2; }

export KRB5_CONFIG="$dir/krb5.conf"
export KRB5_KDC_PROFILE="$dir/kdc.conf"

ensure_packages() {
  local pkgs=()
  [ -x /usr/sbin/krb5kdc ] || pkgs+=(krb5-kdc)
  [ -x /usr/sbin/kadmin.local ] || pkgs+=(krb5-admin-server)
  command -v kinit >/dev/null 2>&1 || pkgs+=(krb5-user)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "missing packages: ${pkgs[*]} (run as root or: apt-get install ${pkgs[*]})"
    return 1
  fi
  say "installing Debian packages ${pkgs[*]}"
  local log=${HSF_INSTALL_LOG:-${TMPDIR:-/tmp}/hive-smallfiles-install.log}
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >>"$log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >>"$log" 2>&1 ||
      { say "installing ${pkgs[*]} failed (see $log)"; tail -n 20 "$log" >&2; return 1; }
  fi
  # The packages start a system KDC for the distribution's default realm; ours is private.
  pkill -x krb5kdc 2>/dev/null || true
  pkill -x kadmind 2>/dev/null || true
}

running() { [ -f "$dir/kdc.pid" ] && kill -0 "$(cat "$dir/kdc.pid")" 2>/dev/null; }

create_realm() {
  mkdir -p "$dir/db"
  cat >"$dir/krb5.conf" <<EOF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  forwardable = true
  renew_lifetime = 1d
  ticket_lifetime = 10h
  udp_preference_limit = 1
[realms]
  $realm = {
    kdc = 127.0.0.1:$port
  }
[domain_realm]
  localhost = $realm
  127.0.0.1 = $realm
EOF
  cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
  kdc_ports = $port
  kdc_tcp_ports = $port
[realms]
  $realm = {
    database_name = $dir/db/principal
    key_stash_file = $dir/db/stash
    acl_file = $dir/kadm5.acl
    max_life = 10h
    max_renewable_life = 1d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$dir/kdc.log
EOF
  : >"$dir/kadm5.acl"
  kdb5_util -r "$realm" create -s -P "hsf-test-master-key" >/dev/null
  # The TGS principal's own lifetimes cap every ticket's.
  kadmin.local -q "modprinc -maxlife 10h -maxrenewlife 1d krbtgt/$realm@$realm" >/dev/null
  local p
  for p in hsf/localhost hsf-short hsf-other HTTP/localhost hive/localhost; do
    kadmin.local -q "addprinc -randkey -maxrenewlife 1d $p@$realm" 2>&1 >/dev/null | { grep -v 'No policy specified' || true; } >&2
  done
  kadmin.local -q "modprinc -maxlife 2min -maxrenewlife 10min hsf-short@$realm" >/dev/null
  add_tiny
  kadmin.local -q "ktadd -k $dir/hsf.keytab hsf/localhost@$realm" >/dev/null
  kadmin.local -q "ktadd -k $dir/short.keytab hsf-short@$realm" >/dev/null
  kadmin.local -q "ktadd -k $dir/other.keytab hsf-other@$realm" >/dev/null
  kadmin.local -q "ktadd -k $dir/http.keytab HTTP/localhost@$realm" >/dev/null
  kadmin.local -q "ktadd -k $dir/hive.keytab hive/localhost@$realm" >/dev/null
  chmod 600 "$dir"/*.keytab
  say "created realm $realm in $dir"
}

# hsf-tiny, added to realms created before it existed too (kadmin.local works beside a
# running KDC, so the shared realm is extended in place).
add_tiny() {
  kadmin.local -q "addprinc -randkey -maxlife 20sec -maxrenewlife 10min hsf-tiny@$realm" 2>&1 >/dev/null | { grep -v 'No policy specified' || true; } >&2
  kadmin.local -q "ktadd -k $dir/tiny.keytab hsf-tiny@$realm" >/dev/null
  chmod 600 "$dir/tiny.keytab"
}

start() {
  ensure_packages
  if [ -f "$dir/db/principal" ] && [ ! -f "$dir/tiny.keytab" ]; then add_tiny; fi
  if running; then say "KDC running on 127.0.0.1:$port ($dir)"; return 0; fi
  [ -f "$dir/db/principal" ] && [ -f "$dir/hive.keytab" ] || { rm -rf "$dir"; create_realm; }
  krb5kdc -r "$realm" -P "$dir/kdc.pid"
  local _
  for _ in $(seq 1 50); do
    if running && kinit -k -t "$dir/hsf.keytab" -c "MEMORY:probe" hsf/localhost@$realm 2>/dev/null; then
      say "KDC running on 127.0.0.1:$port ($dir)"
      return 0
    fi
    sleep 0.1
  done
  say "the KDC did not answer (see $dir/kdc.log)"
  return 1
}

stop() {
  if running; then
    kill "$(cat "$dir/kdc.pid")" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
  fi
  rm -f "$dir/kdc.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running"; else echo "stopped"; exit 1; fi ;;
  env) echo "export KRB5_CONFIG=$dir/krb5.conf" ;;
  kadmin) kadmin.local -q "${2:?kadmin QUERY}" ;;
  *) echo "usage: $0 start|stop|restart|status|env|kadmin QUERY" >&2; exit 2 ;;
esac
