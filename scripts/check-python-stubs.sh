#!/usr/bin/env bash
# Proves the proto contract is language-neutral: generates Python stubs for every file under
# proto/ with grpcio-tools, then runs tests/python/test_stubs.py against them.
#
# Creates the virtualenv .dev/venv on first use and installs the pinned tools into it; later runs
# reuse it without touching the network. Quiet on success apart from pytest's summary; exits
# non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${KEEL_VENV:-$ROOT/.dev/venv}"
PYTHON="${PYTHON:-python3}"
# Pinned together: grpcio-tools bundles its protoc and requires a matching protobuf runtime.
REQUIREMENTS=(grpcio-tools==1.85.1 grpcio==1.85.1 protobuf==7.36.2 pytest==9.2.0)

if [[ ! -x "$VENV/bin/python" ]]; then
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
# Install only when a pinned version is missing (the venv is shared with other dev tools).
if ! "$VENV/bin/python" - "${REQUIREMENTS[@]}" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(any(version(name) != pin for name, pin in (req.split("==") for req in sys.argv[1:])))
PY
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

mapfile -t PROTOS < <(cd proto && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
if [[ ${#PROTOS[@]} -eq 0 ]]; then
  echo "check-python-stubs: no .proto files under proto/" >&2
  exit 1
fi

# grpc_tools.protoc adds the bundled well-known types (google/protobuf/*.proto) to the include path.
"$VENV/bin/python" -m grpc_tools.protoc -Iproto \
  --python_out="$OUT" --grpc_python_out="$OUT" "${PROTOS[@]/#/proto/}"

PYTHONPATH="$OUT" PYTHONDONTWRITEBYTECODE=1 KEEL_PY_STUBS="$OUT" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/python/test_stubs.py"
