#!/usr/bin/env bash
# What building needs beyond the Rust toolchain: the MIT GSSAPI headers and libclang (the
# Kerberos bindings are generated from the installed headers at build time). Installs Debian's
# libkrb5-dev and libclang-dev when missing and we are root; otherwise says what to install.
# Called by .ci/run, tests/run.sh and tests/demo.sh before they build.
set -euo pipefail
say() { printf '[build-deps] %s\n' "$*" >&2; }

missing=()
for p in libkrb5-dev libclang-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  say "cannot check the build prerequisites here: install the MIT Kerberos development files and libclang (RHEL: krb5-devel clang-devel)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "missing build prerequisites: ${missing[*]} (as root: apt-get install ${missing[*]})"
  exit 1
fi
log=${HSF_INSTALL_LOG:-${TMPDIR:-/tmp}/hive-smallfiles-install.log}
say "installing Debian packages ${missing[*]} (output in $log)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1; then
  apt-get update -qq >>"$log" 2>&1 || true
  apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1 ||
    { say "installing ${missing[*]} failed (last lines of $log follow)"; tail -n 20 "$log" >&2; exit 1; }
fi
