#!/usr/bin/env bash
# `make test-lowest`: the unit tests (not the notebooks, not the browser) in a scratch venv with the
# lowest numpy, scikit-learn and matplotlib that pyproject.toml allows, and the pinned torch.
# Everything else resolves to what pip picks beside them. Slow (a fresh venv): not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${LOWEST_VENV:-${TMPDIR:-/tmp}/compresskit-lowest}"
TORCH_INDEX="${TORCH_INDEX-}"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
"$PYTHON" tools/lowest_bounds.py numpy scikit-learn matplotlib > "$VENV/lowest.txt"
torch_pin="$(grep -E '^torch==' requirements.txt)"
echo "constraints: $(tr '\n' ' ' < "$VENV/lowest.txt")and $torch_pin"
"$VENV/bin/python" -m pip install --quiet ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
  -c "$VENV/lowest.txt" "$torch_pin" ".[course,onnx,datasets,test]"
"$VENV/bin/python" -m pip list 2>/dev/null | grep -iE '^(numpy|scikit-learn|matplotlib|scipy|torch) '
# From the source tree, as `make test` does (data files are found beside compresskit/).
"$VENV/bin/python" -m pytest tests --ignore=tests/ui --ignore=tests/test_random_clock.py -m "not ui" -q "$@"
