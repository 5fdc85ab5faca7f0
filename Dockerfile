# The exporter's image: `docker build -t rq-exporter .` (used by docker-compose-rq-monitor.yml).
FROM python:3.12.8-slim-bookworm

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY rq_exporter_ng ./rq_exporter_ng
RUN pip install --no-cache-dir "." \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter

USER 10001
EXPOSE 9726
# The exporter's own check reads its settings (flags of PID 1, the environment): another --port,
# --host or a --web-config-file with TLS is checked where and how the exporter serves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["rq-exporter", "--healthcheck"]
ENTRYPOINT ["rq-exporter"]
