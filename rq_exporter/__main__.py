from rq_exporter.cli import main

raise SystemExit(main())
