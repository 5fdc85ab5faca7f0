#!/usr/bin/env bash
# `make test`: set-up, then the whole suite: everything with RQ 2.x (latest), and the
# real-worker tests again with RQ 3.0, whose key layout differs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh .venv 'rq>=2,<3'
bash scripts/venv.sh .venv-rq3 'rq>=3.0,<4'
echo "== RQ $(.venv/bin/python -c 'import rq; print(rq.__version__)'): full suite" >&2
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== RQ $(.venv-rq3/bin/python -c 'import rq; print(rq.__version__)'): tests with real RQ workers" >&2
.venv-rq3/bin/python -m pytest -q -p no:cacheprovider -m integration "$@"
