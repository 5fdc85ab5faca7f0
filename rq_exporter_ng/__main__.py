from rq_exporter_ng.cli import main

raise SystemExit(main())
