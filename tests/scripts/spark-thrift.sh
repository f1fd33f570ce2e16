#!/usr/bin/env bash
# A real HiveServer2-protocol server for the tests: Spark's Thrift Server (from the PyPI
# `pyspark` package) with an embedded Hive 2.3 metastore on the local MariaDB and a `file:`
# warehouse. Idempotent; safe to call concurrently (an flock serializes start/stop).
#
# Usage: tests/scripts/spark-thrift.sh start|stop|status|restart|prepare
# (`prepare` installs what is missing and creates the metastore database, without starting.)
#
# Environment (all optional):
#   HSF_SPARK_HOME       state directory (pid, log, installed package)   default /tmp/hsf-spark
#   HSF_SPARK_VERSION    pyspark version to install when none is found    default 4.3.0
#   HSF_SPARK_PORT       Thrift (binary) port on 127.0.0.1                default 10000
#   HSF_SPARK_WAREHOUSE  warehouse directory (a local path)               default $HSF_SPARK_HOME/warehouse
#   HSF_SPARK_METASTORE_DB  MariaDB database of the metastore             default hsf_spark_metastore
#   HSF_SPARK_METASTORE_PORT  port of that MariaDB on 127.0.0.1 (root, no password, plain
#                        TCP; e.g. the TLS test server of tls-databases.sh)   default 3306
#   HSF_SPARK_START_TIMEOUT seconds to wait for the server                default 240
#   SPARK_HOME           use this Spark distribution instead of installing pyspark
#
# Security (set by tests/scripts/spark-thrift-secure.sh; all off by default):
#   HSF_SPARK_KERBEROS_KEYTAB  keytab of the service principal: turns on
#                        hive.server2.authentication=KERBEROS (and Hadoop's kerberos login)
#   HSF_SPARK_KERBEROS_PRINCIPAL  service principal                 default hive/localhost@HSF.TEST
#   HSF_SPARK_KRB5_CONF  krb5.conf of the realm (the JVM's java.security.krb5.conf)
#   HSF_SPARK_TRANSPORT  binary or http (http path `cliservice`)     default binary
#   HSF_SPARK_SASL_QOP   auth, auth-int or auth-conf (binary with Kerberos)   default auth
#   HSF_SPARK_KEYSTORE, HSF_SPARK_KEYSTORE_PASSWORD  a PKCS12 keystore: turns on SSL
#   With any of them, readiness is the port accepting connections (beeline would need a
#   ticket or a trust store); clients retry their first session.
#
# Needs: Java 17, MariaDB reachable as root@127.0.0.1:3306 without a password (see
# ensure-services.sh, called when MariaDB is not reachable), the Debian package
# libmariadb-java and pip (both installed when missing and running as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
HSF_SPARK_HOME=${HSF_SPARK_HOME:-/tmp/hsf-spark}
HSF_SPARK_VERSION=${HSF_SPARK_VERSION:-4.3.0}
HSF_SPARK_PORT=${HSF_SPARK_PORT:-10000}
HSF_SPARK_WAREHOUSE=${HSF_SPARK_WAREHOUSE:-$HSF_SPARK_HOME/warehouse}
HSF_SPARK_METASTORE_DB=${HSF_SPARK_METASTORE_DB:-hsf_spark_metastore}
HSF_SPARK_METASTORE_PORT=${HSF_SPARK_METASTORE_PORT:-3306}
HSF_SPARK_START_TIMEOUT=${HSF_SPARK_START_TIMEOUT:-240}
HSF_SPARK_KERBEROS_KEYTAB=${HSF_SPARK_KERBEROS_KEYTAB:-}
HSF_SPARK_KERBEROS_PRINCIPAL=${HSF_SPARK_KERBEROS_PRINCIPAL:-hive/localhost@HSF.TEST}
HSF_SPARK_KRB5_CONF=${HSF_SPARK_KRB5_CONF:-}
HSF_SPARK_TRANSPORT=${HSF_SPARK_TRANSPORT:-binary}
HSF_SPARK_SASL_QOP=${HSF_SPARK_SASL_QOP:-auth}
HSF_SPARK_KEYSTORE=${HSF_SPARK_KEYSTORE:-}
HSF_SPARK_KEYSTORE_PASSWORD=${HSF_SPARK_KEYSTORE_PASSWORD:-}

pid_file="$HSF_SPARK_HOME/thrift-$HSF_SPARK_PORT.pid"
log_file="$HSF_SPARK_HOME/thrift-$HSF_SPARK_PORT.log"
dist_dir="$HSF_SPARK_HOME/dist/pyspark-$HSF_SPARK_VERSION"
mariadb_jar=/usr/share/java/mariadb-java-client.jar

say() { printf '[spark-thrift] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Package managers' output goes here, not to the console; its last lines are shown on failure.
install_log=${HSF_INSTALL_LOG:-${TMPDIR:-/tmp}/hive-smallfiles-install.log}

apt_install() {
  is_root || die "missing packages: $* (install them: apt-get install $*)"
  say "installing Debian packages $* (output in $install_log)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$@" >>"$install_log" 2>&1 ||
    { apt-get update -qq >>"$install_log" 2>&1 && apt-get install -y -qq "$@" >>"$install_log" 2>&1; } ||
    { tail -n 20 "$install_log" >&2; die "installing $* failed (see $install_log)"; }
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$HSF_SPARK_PORT") 2>/dev/null; }

our_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

spark_home() {
  if [ -n "${SPARK_HOME:-}" ] && [ -x "$SPARK_HOME/bin/spark-submit" ]; then
    echo "$SPARK_HOME"
  elif [ -x "$dist_dir/pyspark/bin/spark-submit" ]; then
    echo "$dist_dir/pyspark"
  else
    return 1
  fi
}

install_spark() {
  spark_home >/dev/null && return 0
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  say "installing pyspark==$HSF_SPARK_VERSION into $dist_dir (about 500 MB)"
  local t0=$SECONDS
  rm -rf "$dist_dir.partial"
  mkdir -p "$(dirname "$dist_dir")"
  # --target installs beside, not into, the system Python (no PEP 668 conflict); the
  # server runs on the JVM, so pyspark's Python dependencies are not needed.
  python3 -m pip install -q --disable-pip-version-check --no-deps --no-compile \
    --target "$dist_dir.partial" "pyspark==$HSF_SPARK_VERSION" >&2
  mv "$dist_dir.partial" "$dist_dir"
  say "pyspark installed in $((SECONDS - t0)) s"
}

# ensure_prerequisites under a machine-wide lock: servers on other ports may start (and
# install) at the same time.
prepare_locked() {
  exec 8>"$HSF_SPARK_HOME/.lock-install"
  flock 8
  ensure_prerequisites
  exec 8>&-
}

ensure_prerequisites() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  [ -f "$mariadb_jar" ] || apt_install libmariadb-java
  [ -f "$mariadb_jar" ] || die "no MariaDB JDBC driver at $mariadb_jar"
  if ! mariadb -h 127.0.0.1 -P "$HSF_SPARK_METASTORE_PORT" -u root -e 'SELECT 1' >/dev/null 2>&1; then
    "$here/ensure-services.sh" --no-postgres --no-prometheus
  fi
  # Hive's DataNucleus schema needs latin1 (utf8mb4 exceeds MariaDB's row/key limits).
  mariadb -h 127.0.0.1 -P "$HSF_SPARK_METASTORE_PORT" -u root -e \
    "CREATE DATABASE IF NOT EXISTS \`$HSF_SPARK_METASTORE_DB\` CHARACTER SET latin1" >/dev/null
  # DataNucleus creates only the JDO model; Hive's ACID listener still cleans the
  # transaction tables on DROP DATABASE ("Table ... TXN_COMPONENTS doesn't exist"). Create the
  # ones it touches, with Hive 2.3's column names (empty: Spark never writes them).
  mariadb -h 127.0.0.1 -P "$HSF_SPARK_METASTORE_PORT" -u root "$HSF_SPARK_METASTORE_DB" -e "
    CREATE TABLE IF NOT EXISTS TXN_COMPONENTS (TC_TXNID bigint NOT NULL,
      TC_DATABASE varchar(128) NOT NULL, TC_TABLE varchar(128) NOT NULL,
      TC_PARTITION varchar(767), TC_OPERATION_TYPE char(1) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=latin1;
    CREATE TABLE IF NOT EXISTS COMPLETED_TXN_COMPONENTS (CTC_TXNID bigint NOT NULL,
      CTC_DATABASE varchar(128) NOT NULL, CTC_TABLE varchar(256),
      CTC_PARTITION varchar(767)) ENGINE=InnoDB DEFAULT CHARSET=latin1;
    CREATE TABLE IF NOT EXISTS COMPACTION_QUEUE (CQ_ID bigint PRIMARY KEY,
      CQ_DATABASE varchar(128) NOT NULL, CQ_TABLE varchar(128) NOT NULL,
      CQ_PARTITION varchar(767), CQ_STATE char(1) NOT NULL, CQ_TYPE char(1) NOT NULL,
      CQ_WORKER_ID varchar(128), CQ_START bigint, CQ_RUN_AS varchar(128)) ENGINE=InnoDB DEFAULT CHARSET=latin1;
    CREATE TABLE IF NOT EXISTS COMPLETED_COMPACTIONS (CC_ID bigint PRIMARY KEY,
      CC_DATABASE varchar(128) NOT NULL, CC_TABLE varchar(128) NOT NULL,
      CC_PARTITION varchar(767), CC_STATE char(1) NOT NULL, CC_TYPE char(1) NOT NULL,
      CC_WORKER_ID varchar(128), CC_START bigint, CC_END bigint,
      CC_RUN_AS varchar(128)) ENGINE=InnoDB DEFAULT CHARSET=latin1;" >/dev/null
  install_spark
}

# Every persistent class of Hive 2.3's metastore model: creating all tables at start avoids
# the lazy-creation deadlock (a foreign key added while the metastore holds a lock).
model_classes() {
  local p=org.apache.hadoop.hive.metastore.model. out="" c
  for c in MDatabase MFieldSchema MType MTable MConstraint MSerDeInfo MOrder MColumnDescriptor \
    MStringList MStorageDescriptor MPartition MIndex MRole MRoleMap MGlobalPrivilege \
    MDBPrivilege MTablePrivilege MPartitionPrivilege MTableColumnPrivilege \
    MPartitionColumnPrivilege MPartitionEvent MMasterKey MDelegationToken \
    MTableColumnStatistics MPartitionColumnStatistics MVersionTable MResourceUri MFunction \
    MNotificationLog MNotificationNextId; do
    out="$out${out:+,}$p$c"
  done
  echo "$out"
}

query_ok() {
  local home=$1
  # stdin from /dev/null: `timeout` runs beeline in a background process group, and in an
  # interactive terminal reading the terminal would stop it (SIGTTIN) until the timeout.
  SPARK_HOME="$home" timeout 120 "$home/bin/beeline" -u "jdbc:hive2://127.0.0.1:$HSF_SPARK_PORT/default" \
    -n hsf --silent=true --showHeader=false --outputformat=csv2 -e "SELECT concat('hsf_', 'ready')" \
    </dev/null 2>/dev/null | grep -q hsf_ready
}

# The extra spark-submit arguments of the security settings, one per line; the Hadoop
# configuration directory of the Kerberos login is written here.
security_args() {
  if [ -n "$HSF_SPARK_KERBEROS_KEYTAB" ]; then
    [ -f "$HSF_SPARK_KERBEROS_KEYTAB" ] || die "no keytab $HSF_SPARK_KERBEROS_KEYTAB"
    local conf="$HSF_SPARK_HOME/conf-$HSF_SPARK_PORT"
    mkdir -p "$conf"
    # yarn.resourcemanager.principal: reading a Hive table asks Hadoop's TokenCache for
    # delegation tokens, which needs a "master" principal as renewer even on a local warehouse.
    printf '%s\n' '<?xml version="1.0"?>' '<configuration>' \
      '  <property><name>hadoop.security.authentication</name><value>kerberos</value></property>' \
      "  <property><name>yarn.resourcemanager.principal</name><value>$HSF_SPARK_KERBEROS_PRINCIPAL</value></property>" \
      '</configuration>' >"$conf/core-site.xml"
    printf '%s\n' --principal "$HSF_SPARK_KERBEROS_PRINCIPAL" --keytab "$HSF_SPARK_KERBEROS_KEYTAB"
    [ -z "$HSF_SPARK_KRB5_CONF" ] ||
      printf '%s\n' --driver-java-options "-Djava.security.krb5.conf=$HSF_SPARK_KRB5_CONF"
    printf '%s\n' --conf spark.hadoop.hadoop.security.authentication=kerberos \
      --conf "spark.hadoop.yarn.resourcemanager.principal=$HSF_SPARK_KERBEROS_PRINCIPAL" \
      --hiveconf hive.server2.authentication=KERBEROS \
      --hiveconf "hive.server2.authentication.kerberos.principal=$HSF_SPARK_KERBEROS_PRINCIPAL" \
      --hiveconf "hive.server2.authentication.kerberos.keytab=$HSF_SPARK_KERBEROS_KEYTAB" \
      --hiveconf "hive.server2.thrift.sasl.qop=$HSF_SPARK_SASL_QOP" \
      --hiveconf hive.server2.enable.doAs=false
  fi
  if [ "$HSF_SPARK_TRANSPORT" = http ]; then
    printf '%s\n' --hiveconf hive.server2.transport.mode=http \
      --hiveconf "hive.server2.thrift.http.port=$HSF_SPARK_PORT" \
      --hiveconf hive.server2.thrift.http.path=cliservice
    # The login cookie over plain HTTP: marked Secure only when the server uses SSL.
    [ -n "$HSF_SPARK_KEYSTORE" ] ||
      printf '%s\n' --hiveconf hive.server2.thrift.http.cookie.is.secure=false
  fi
  if [ -n "$HSF_SPARK_KEYSTORE" ]; then
    [ -f "$HSF_SPARK_KEYSTORE" ] || die "no keystore $HSF_SPARK_KEYSTORE"
    printf '%s\n' --hiveconf hive.server2.use.SSL=true \
      --hiveconf "hive.server2.keystore.path=$HSF_SPARK_KEYSTORE" \
      --hiveconf "hive.server2.keystore.password=$HSF_SPARK_KEYSTORE_PASSWORD"
  fi
  return 0
}

secured() {
  [ -n "$HSF_SPARK_KERBEROS_KEYTAB" ] || [ -n "$HSF_SPARK_KEYSTORE" ] || [ "$HSF_SPARK_TRANSPORT" != binary ]
}

do_start() {
  if pid=$(our_pid) && port_open; then
    say "already running (pid $pid) on 127.0.0.1:$HSF_SPARK_PORT; log $log_file; warehouse $HSF_SPARK_WAREHOUSE"
    return 0
  fi
  if ! our_pid >/dev/null && port_open; then
    say "127.0.0.1:$HSF_SPARK_PORT is already served by another process; using it as is"
    return 0
  fi
  local t0=$SECONDS
  prepare_locked
  local home
  home=$(spark_home) || die "no Spark distribution"
  mkdir -p "$HSF_SPARK_WAREHOUSE"
  local warehouse
  warehouse=$(cd "$HSF_SPARK_WAREHOUSE" && pwd)
  local extra=()
  mapfile -t extra < <(security_args)
  if pid=$(our_pid); then
    say "pid $pid is starting already; waiting for it"
  else
    local url="jdbc:mysql://127.0.0.1:$HSF_SPARK_METASTORE_PORT/$HSF_SPARK_METASTORE_DB?useMysqlMetadata=true&createDatabaseIfNotExist=true"
    say "starting Spark Thrift Server on 127.0.0.1:$HSF_SPARK_PORT (log $log_file)"
    : >"$log_file"
    (
      exec 9>&- # do not hold the start lock for the server's lifetime
      cd "$HSF_SPARK_HOME"
      export SPARK_HOME="$home" SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$HSF_SPARK_HOME"
      if [ -n "$HSF_SPARK_KERBEROS_KEYTAB" ]; then
        # Hadoop's configuration with kerberos authentication, and a private, empty ticket
        # cache: with a shared one the server would silently run as whoever logged in there.
        export HADOOP_CONF_DIR="$HSF_SPARK_HOME/conf-$HSF_SPARK_PORT"
        export KRB5CCNAME="FILE:$HSF_SPARK_HOME/krb5cc-$HSF_SPARK_PORT"
        rm -f "$HSF_SPARK_HOME/krb5cc-$HSF_SPARK_PORT"
        [ -z "$HSF_SPARK_KRB5_CONF" ] || export KRB5_CONFIG="$HSF_SPARK_KRB5_CONF"
      fi
      exec setsid "$home/bin/spark-submit" \
        --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
        --name hsf-spark-thrift \
        --master 'local[2]' \
        --driver-memory 1g \
        --jars "$mariadb_jar" \
        --driver-class-path "$mariadb_jar" \
        --conf spark.driver.extraClassPath="$mariadb_jar" \
        --conf spark.driver.host=127.0.0.1 \
        --conf spark.driver.bindAddress=127.0.0.1 \
        --conf spark.ui.enabled=false \
        --conf spark.sql.shuffle.partitions=2 \
        --conf spark.sql.catalogImplementation=hive \
        --conf spark.sql.warehouse.dir="file:$warehouse" \
        --conf spark.hadoop.javax.jdo.option.ConnectionURL="$url" \
        --conf spark.hadoop.javax.jdo.option.ConnectionDriverName=org.mariadb.jdbc.Driver \
        --conf spark.hadoop.javax.jdo.option.ConnectionUserName=root \
        --conf spark.hadoop.javax.jdo.option.ConnectionPassword= \
        --conf spark.hadoop.datanucleus.schema.autoCreateAll=true \
        --conf spark.hadoop.datanucleus.autoStartMechanism=Classes \
        --conf spark.hadoop.datanucleus.autoStartClassNames="$(model_classes)" \
        --conf spark.hadoop.hive.metastore.schema.verification=false \
        --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
        --hiveconf hive.server2.thrift.port="$HSF_SPARK_PORT" \
        "${extra[@]}" \
        spark-internal
    ) </dev/null >>"$log_file" 2>&1 &
    echo $! >"$pid_file"
  fi
  local deadline=$((SECONDS + HSF_SPARK_START_TIMEOUT))
  until port_open; do
    if ! our_pid >/dev/null; then
      tail -n 40 "$log_file" >&2 || true
      rm -f "$pid_file"
      die "the server exited during start; log $log_file"
    fi
    [ $SECONDS -lt $deadline ] || die "not listening after ${HSF_SPARK_START_TIMEOUT}s; log $log_file"
    sleep 0.5
  done
  if secured; then
    say "listening after $((SECONDS - t0)) s (pid $(our_pid)); log $log_file"
    return 0
  fi
  say "listening after $((SECONDS - t0)) s; checking a query"
  until query_ok "$home"; do
    [ $SECONDS -lt $deadline ] || die "listening but a query fails; log $log_file"
    sleep 1
  done
  say "ready after $((SECONDS - t0)) s (pid $(our_pid)); log $log_file; warehouse file:$warehouse"
}

do_stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pid_file"
    say "not running"
    return 0
  fi
  say "stopping pid $pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  say "stopped"
}

do_status() {
  local pid
  if pid=$(our_pid) && port_open; then
    echo "running pid=$pid port=$HSF_SPARK_PORT log=$log_file warehouse=$HSF_SPARK_WAREHOUSE"
  elif pid=$(our_pid); then
    echo "starting pid=$pid port=$HSF_SPARK_PORT log=$log_file"
    return 1
  elif port_open; then
    echo "port $HSF_SPARK_PORT served by another process"
  else
    echo "stopped"
    return 3
  fi
}

cmd=${1:-}
mkdir -p "$HSF_SPARK_HOME"
case "$cmd" in
  start | stop | restart)
    exec 9>"$HSF_SPARK_HOME/.lock-$HSF_SPARK_PORT"
    flock 9
    case "$cmd" in
      start) do_start ;;
      stop) do_stop ;;
      restart) do_stop && do_start ;;
    esac
    ;;
  prepare)
    prepare_locked
    ;;
  status) do_status ;;
  *)
    echo "usage: $0 start|stop|status|restart|prepare" >&2
    exit 2
    ;;
esac
