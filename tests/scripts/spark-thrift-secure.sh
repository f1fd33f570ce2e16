#!/usr/bin/env bash
# The Kerberized Spark Thrift Servers of the secured-cluster tests, beside the plain one of
# spark-thrift.sh (port 10000, unchanged):
#
#   127.0.0.1:$HSF_SPARK_SECURE_BINARY_PORT (default 10001)  binary transport, Kerberos
#       (SASL GSSAPI, hive.server2.thrift.sasl.qop=auth-conf) over SSL
#   127.0.0.1:$HSF_SPARK_SECURE_HTTP_PORT   (default 10002)  HTTP transport (path cliservice),
#       Kerberos (`Authorization: Negotiate`), login cookie, over SSL (HTTPS, as Knox and load
#       balancers serve it)
#
# Both authenticate clients with the service principal hive/localhost@HSF.TEST of the test
# KDC (tests/scripts/kdc.sh, started here when it does not run) and each keeps its own
# metastore database and warehouse. The test CA and the server certificate (for DNS name
# `localhost` only: connecting to 127.0.0.1 is a name mismatch) are made here with openssl:
#   $HSF_SPARK_HOME/tls/ca.pem        the CA the tests trust
#   $HSF_SPARK_HOME/tls/other-ca.pem  a CA that signed nothing of the server's (untrusted)
#   $HSF_SPARK_HOME/tls/server.p12    the server's PKCS12 keystore (password hsf-test-keystore)
#
# Usage: tests/scripts/spark-thrift-secure.sh start|stop|status
# `start` returns when both listen (each is started in parallel; the first start installs
# pyspark through spark-thrift.sh). The servers stay up until `stop`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export HSF_SPARK_HOME=${HSF_SPARK_HOME:-/tmp/hsf-spark}
binary_port=${HSF_SPARK_SECURE_BINARY_PORT:-10001}
http_port=${HSF_SPARK_SECURE_HTTP_PORT:-10002}
kdc_dir=${HSF_KDC_DIR:-/tmp/hsf-kdc}
# The metastores live on the TLS MariaDB of tls-databases.sh (Spark connects as root over
# plain TCP; our programs read them with TLS as a user that must use it).
metastore_port=${HSF_TLS_MYSQL_PORT:-3307}
tls_dir="$HSF_SPARK_HOME/tls"
keystore_password=hsf-test-keystore

say() { printf '[spark-thrift-secure] %s\n' "$*" >&2; }

make_certificates() {
  [ -f "$tls_dir/server.p12" ] && [ -f "$tls_dir/other-ca.pem" ] && return 0
  mkdir -p "$tls_dir"
  local d
  d=$(mktemp -d "$tls_dir/.new.XXXXXX")
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hsf test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hsf other CA" \
      -keyout other-ca.key -out other-ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile ext.cnf -out server.pem 2>/dev/null
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name hsf \
      -passout "pass:$keystore_password" -out server.p12
  )
  mv "$d"/{ca.pem,other-ca.pem,server.pem,server.p12} "$tls_dir/"
  rm -rf "$d"
  say "made the test CA and server certificate in $tls_dir"
}

start_one() {
  local port=$1
  shift
  env HSF_SPARK_PORT="$port" \
    HSF_SPARK_WAREHOUSE="$HSF_SPARK_HOME/warehouse-$port" \
    HSF_SPARK_METASTORE_DB="hsf_spark_metastore_$port" \
    HSF_SPARK_METASTORE_PORT="$metastore_port" \
    HSF_SPARK_KERBEROS_KEYTAB="$kdc_dir/hive.keytab" \
    HSF_SPARK_KERBEROS_PRINCIPAL=hive/localhost@HSF.TEST \
    HSF_SPARK_KRB5_CONF="$kdc_dir/krb5.conf" \
    "$@" "$here/spark-thrift.sh" start
}

case "${1:-}" in
  start)
    HSF_KDC_DIR="$kdc_dir" "$here/kdc.sh" start
    "$here/tls-databases.sh" start
    make_certificates
    # pyspark and the packages are installed once, before the two starts run side by side.
    "$here/spark-thrift.sh" prepare
    start_one "$binary_port" HSF_SPARK_SASL_QOP=auth-conf \
      HSF_SPARK_KEYSTORE="$tls_dir/server.p12" HSF_SPARK_KEYSTORE_PASSWORD="$keystore_password" &
    b=$!
    start_one "$http_port" HSF_SPARK_TRANSPORT=http \
      HSF_SPARK_KEYSTORE="$tls_dir/server.p12" HSF_SPARK_KEYSTORE_PASSWORD="$keystore_password" &
    h=$!
    status=0
    wait "$b" || status=1
    wait "$h" || status=1
    exit "$status"
    ;;
  stop | status)
    s=0
    for port in "$binary_port" "$http_port"; do
      HSF_SPARK_PORT=$port HSF_SPARK_WAREHOUSE="$HSF_SPARK_HOME/warehouse-$port" \
        "$here/spark-thrift.sh" "$1" || s=$?
    done
    exit "$s"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
