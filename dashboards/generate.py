"""prometheus/alerts-config.yml -> dashboards/rq-*.json (the generator is bundlegen.dashboards;
`make bundle` runs it).

    python dashboards/generate.py           # rewrite the JSON files
    python dashboards/generate.py --check   # exit 1 when a committed file differs
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bundlegen is at the repository root

from bundlegen.dashboards import main

if __name__ == "__main__":
    raise SystemExit(main())
