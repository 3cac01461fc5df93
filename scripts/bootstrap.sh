#!/usr/bin/env bash
# Idempotent set-up for the two README commands.
#   scripts/bootstrap.sh run   -> .venv with pypmacct installed
#   scripts/bootstrap.sh test  -> the above + test dependencies: Debian's pmacct 1.7.7
#                                 (the reference), softflowd, tcpdump, nftables; pip test extras
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

PY=${PYTHON:-python3}
# client libraries the SQL plugins' Python drivers build against (mysqlclient, psycopg2)
if [ "$mode" = test ] || [ -n "${PYPMACCT_SQL:-}" ]; then
  sqlneed=()
  dpkg -s libmariadb-dev >/dev/null 2>&1 || sqlneed+=(libmariadb-dev)
  dpkg -s pkg-config >/dev/null 2>&1 || sqlneed+=(pkg-config)
  dpkg -s libpq-dev >/dev/null 2>&1 || sqlneed+=(libpq-dev)
  dpkg -s sqlite3 >/dev/null 2>&1 || sqlneed+=(sqlite3)
  # tests/sql/test_sql_tls.py runs its own TLS PostgreSQL and MariaDB: server binaries + openssl
  dpkg -s openssl >/dev/null 2>&1 || sqlneed+=(openssl)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || sqlneed+=(postgresql)
  command -v mariadb-install-db >/dev/null 2>&1 || sqlneed+=(mariadb-server)
  if [ ${#sqlneed[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${sqlneed[@]}" >/dev/null
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# editable_mode=compat: a plain path entry, not setuptools' finder (start-up: see
# pypmacct/__init__.py); the stamp's name says so, so that older venvs are redone
stamp=.venv/.installed-$mode-compat
editable() {
  # setuptools calls compat mode transitional: where it is gone, the default mode works too
  .venv/bin/python -m pip install -q -e "$1" --config-settings editable_mode=compat 2>/dev/null ||
    .venv/bin/python -m pip install -q -e "$1"
}
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$mode" = test ]; then
    editable '.[test,bench]'   # bench: the smoke bench draws its plot
  else
    editable .
  fi
  touch "$stamp"
fi

if [ "$mode" = test ]; then
  need=()
  command -v /usr/sbin/nfacctd >/dev/null 2>&1 || need+=(pmacct)
  command -v /usr/sbin/softflowd >/dev/null 2>&1 || need+=(softflowd)
  command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
  # uacctd's test: a network namespace with nftables NFLOG rules
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  /usr/sbin/nfacctd -V | head -1
fi
