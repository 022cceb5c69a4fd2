#!/usr/bin/env bash
# Installs the servers the tests start themselves (issue 12), when missing: MariaDB from
# Debian's packages (never started as a system service: tests start their own
# `mariadbd` on a temporary data directory), and a
# Kafka-protocol broker with transactions (`noida-db`, from PyPI, pinned) in a
# virtualenv at $SLUICE_VENV (default ~/.cache/sluice-venv), with its server binary
# linked at $SLUICE_VENV/noida-db (the package's `noida-db` command is a Python wrapper
# that would outlive a kill). Tests find it there (or at $SLUICE_NOIDA_DB), start it on
# a free loopback port and kill it by process id.
# Idempotent; does nothing when all is present.
set -euo pipefail
VENV="${SLUICE_VENV:-$HOME/.cache/sluice-venv}"
NOIDA_DB_VERSION=0.2.3
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
missing=()
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
if ((${#missing[@]})); then
  echo "test-services: installing ${missing[*]}" >&2
  # Keep the package scripts from starting MariaDB as a service (policy-rc.d 101:
  # "action forbidden"), unless the machine already has a policy.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ "$("$VENV/noida-db" version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)" != "$NOIDA_DB_VERSION" ]]; then
  echo "test-services: installing noida-db $NOIDA_DB_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "noida-db==$NOIDA_DB_VERSION"
fi
if [[ ! -x "$VENV/noida-db" ]]; then
  bin=$("$VENV/bin/python" -c 'import os, noida_db; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')
  chmod 755 "$bin"
  ln -sfn "$bin" "$VENV/noida-db"
fi
