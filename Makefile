# The two commands: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
# the environment test-rq2 of scripts/envs.sh
VENV := .venv
PYTHON ?= python3
ARGS ?=

.PHONY: run test test-newest lock venv catalogue docs clean

# Runs the exporter on :9726 against $RQ_EXPORTER_REDIS_URL (default redis://localhost:6379/0).
run: venv
	$(VENV)/bin/rq-exporter $(ARGS)

# Installs what the tests need (apt-get redis-server/prometheus when root; every Python environment
# from its lock in locks/), then runs every test.
test:
	bash scripts/test.sh

# The same suite against today's newest releases within pyproject.toml's ranges (locks resolved
# afresh into .tmp/locks-newest, not committed): upstream drift found on purpose. `make test`
# rebuilds the locked environments afterwards.
test-newest:
	bash scripts/lock.sh .tmp/locks-newest
	LOCKS=.tmp/locks-newest bash scripts/test.sh

# Resolves every environment's lock in locks/ anew (newest releases, with hashes); commit the result.
lock:
	bash scripts/lock.sh

# .venv: the exporter with RQ 2.x and the test tools, exactly as locks/test-rq2.txt pins them.
venv:
	bash scripts/venv.sh test-rq2

# Prints the README metric table from the catalogue.
catalogue: venv
	$(VENV)/bin/python -m rq_exporter_ng.families.catalogue

clean:
	rm -rf .venv .venv-rq3 .venv-rq .venv-min .venv-py310 .venv-py313 .venv-tools .tmp *.egg-info

# Rewrites the README's metric and settings tables from the catalogue and the settings model.
docs: venv
	$(VENV)/bin/python scripts/readme.py

# --- Monitoring bundle (README "Monitoring bundle") ---------------------------------------
.PHONY: bundle demo start-rq-mon stop-rq-mon
COMPOSE ?= docker compose
MON := -p rq-monitor -f docker-compose-rq-monitor.yml --profile demo

# Regenerates prometheus/rules/rq-alerts.yml and rq-recording.yml (from prometheus/alerts-config.yml), dashboards/*.json
# and k8s/prometheusrule.yaml (from the rules).
bundle: venv
	$(VENV)/bin/python prometheus/generate_rules.py
	$(VENV)/bin/python dashboards/generate.py
	$(VENV)/bin/python scripts/k8s_rules.py

# Redis, demo workers + producer, rq cron + rqscheduler, the exporter, and (when installed) Prometheus, Alertmanager and the
# notification receiver, locally; Ctrl-C stops all. DEMO_ARGS="--alert-for 10s" shortens the alerts' waits.
demo: venv
	bash scripts/system-deps.sh demo
	$(VENV)/bin/python -m demo.run $(DEMO_ARGS)

# The compose stack with the demo profile: Redis, demo app, exporter, Prometheus, Alertmanager, the
# notification receiver, Grafana (needs Docker).
start-rq-mon:
	$(COMPOSE) $(MON) up -d --build
	@echo "Grafana http://localhost:3000  Prometheus http://localhost:9090  Alertmanager http://localhost:9093  notifications http://localhost:9095"

stop-rq-mon:
	$(COMPOSE) $(MON) down --volumes

# --- Kubernetes (README "Running in production") ------------------------------------------
.PHONY: k8s
# Regenerates k8s/prometheusrule.yaml from prometheus/rules/*.yml (`make bundle` runs it too).
k8s: venv
	$(VENV)/bin/python scripts/k8s_rules.py
