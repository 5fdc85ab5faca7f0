# The exporter's image: `docker build -t rq-exporter .` (used by docker-compose-rq-monitor.yml).
FROM python:3.12.8-slim-bookworm

WORKDIR /app
COPY pyproject.toml README.md ./
COPY rq_exporter ./rq_exporter
RUN pip install --no-cache-dir "." \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter

USER 10001
EXPOSE 9726
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9726/healthz', timeout=2)"]
ENTRYPOINT ["rq-exporter"]
