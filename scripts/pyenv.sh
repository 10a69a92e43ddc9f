#!/bin/sh
# Creates the Python virtualenv used by the third-party client test
# (tests/it/third_party_py.rs): py3fdfsv2 from PyPI plus pypinyin, which
# py3fdfsv2 imports without declaring it as a dependency, and prometheus_client,
# whose text-format parser reads the servers' /metrics (tests/it/http.rs).
#
# The venv lives at $FDFS_VENV (default: <repo>/target/pyvenv). Running the
# script again is cheap: it does nothing when the venv already imports all three.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${FDFS_VENV:-$repo/target/pyvenv}
python=${PYTHON:-python3}

# Pinned: tests/py/client_test.py works around bugs of exactly this release.
PY3FDFSV2=py3fdfsv2==2.4.1
PYPINYIN=pypinyin==0.55.0
PROMETHEUS=prometheus_client==0.21.1

if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c 'import fdfs_client.client, pypinyin, prometheus_client' 2>/dev/null; then
    echo "pyenv: $venv is ready"
    exit 0
fi

echo "pyenv: creating $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$PY3FDFSV2" "$PYPINYIN" "$PROMETHEUS"
"$venv/bin/python" -c 'import fdfs_client.client, pypinyin, prometheus_client'
echo "pyenv: $venv is ready"
