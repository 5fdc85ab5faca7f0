"""prometheus/alerts-config.yml -> prometheus/rules/rq-recording.yml and rules/rq-alerts.yml
(the generator is bundlegen.rules; `make bundle` runs it).

    python prometheus/generate_rules.py           # rewrite both rule files
    python prometheus/generate_rules.py --check   # exit 1 when a committed file is stale
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bundlegen is at the repository root

from bundlegen.rules import main

if __name__ == "__main__":
    raise SystemExit(main())
