"""Settings -> a redis-py client that fails fast instead of retrying past the scrape timeout."""

from __future__ import annotations

import logging
import ssl

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rq_exporter_ng import redis_internals, value_checks
from rq_exporter_ng.redis_url import redact
from rq_exporter_ng.settings import Settings

log = logging.getLogger("rq_exporter")


def password(settings: Settings) -> str | None:
    """None for no AUTH, also when the password is empty: a Secret or variable left empty for a
    Redis without one must not make redis-py (or Redis) refuse the connection."""
    if settings.redis_password is not None:
        return settings.redis_password.get_secret_value() or None
    path = settings.redis_password_file
    if path is not None:
        if value_checks.absent_from_secret(path):
            log.info("--redis-password-file: %s is not in its Kubernetes Secret: no password", path)
            return None
        # Whitespace around it dropped, as rq-exporter 3.x read the file (a Redis password has none).
        return path.read_text().strip() or None
    return None


def redis_url(settings: Settings) -> str:
    """The Redis URL to connect to (may hold a password: never log it, use ``redacted_target``)."""
    if settings.redis_url:
        return settings.redis_url
    # As rq-exporter 3.x: --redis-port or --redis-db alone mean localhost's.
    host = settings.redis_host or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"redis://{host}:{settings.redis_port}/{settings.redis_db}"


def sentinels(settings: Settings) -> list[tuple[str, int]]:
    """--sentinel-host's 'host' and 'host:port' items, with --sentinel-port where none is given."""
    items = value_checks.sentinel_items(settings.sentinel_host) if settings.sentinel_host else []
    return [(host, settings.sentinel_port if port is None else port) for host, port in items]


def redacted_target(settings: Settings) -> str:
    """Where the exporter reads from, safe for logs and the landing page."""
    if settings.sentinel_host:
        hosts = ",".join(f"{h}:{p}" for h, p in sentinels(settings))
        return f"sentinel://{hosts}/{settings.sentinel_master}/{settings.redis_db}"
    return redact(redis_url(settings))


def _no_retry() -> Retry:
    # redis-py 6 retries 3 times with backoff by default: seconds past Prometheus' timeout.
    return Retry(NoBackoff(), 0)


# RESP2: every Redis RQ runs on speaks it (HELLO 3 needs Redis 6), and batch.py's raw path reads it;
# redis-py 8 would ask for RESP3.
PROTOCOL = 2


def _options(settings: Settings) -> dict:
    options: dict = {
        "protocol": PROTOCOL,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "socket_timeout": settings.redis_read_timeout,
        "retry": _no_retry(),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    if settings.redis_username:
        options["username"] = settings.redis_username
    secret = password(settings)
    if secret is not None:
        options["password"] = secret
    return options


def _tls_options(settings: Settings) -> dict:
    options: dict = {}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if settings.redis_tls_cert_file:
        options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        options["ssl_keyfile"] = str(settings.redis_tls_key_file)
    if settings.redis_tls_relax_x509_strict:
        options.update(_without_x509_strict(sentinel=bool(settings.sentinel_host)))
    return options


def _without_x509_strict(sentinel: bool) -> dict:
    """Python 3.13's VERIFY_X509_STRICT off, every other check kept: redis-py's own
    ssl_exclude_verify_flags where it has them, else a connection class building the context."""
    if redis_internals.takes_verify_flags():
        return {"ssl_exclude_verify_flags": [ssl.VERIFY_X509_STRICT]}
    return {"connection_class": redis_internals.relaxed_ssl_connection(sentinel)}


def connect(settings: Settings) -> redis.Redis:
    """A client for the configured Redis; connects lazily, so a down Redis is not an error here."""
    options = _options(settings)
    if settings.sentinel_host:
        from redis.sentinel import Sentinel

        # Settings refuse a sentinel host without a master name; this says so to the type checker
        # too, instead of passing None on to redis-py.
        if not settings.sentinel_master:
            raise ValueError("sentinel_master is required with sentinel_host")

        sentinel = Sentinel(
            sentinels(settings),
            sentinel_kwargs={
                "socket_timeout": settings.redis_read_timeout,
                "socket_connect_timeout": settings.redis_connect_timeout,
                "retry": _no_retry(),
                "protocol": PROTOCOL,
                **({"password": settings.sentinel_password.get_secret_value()} if settings.sentinel_password else {}),
            },
        )
        if settings.redis_tls_ca_file or settings.redis_tls_cert_file:
            # No URL says rediss:// here: TLS files are what asks for TLS to the master.
            options.update(ssl=True, **_tls_options(settings))
        return sentinel.master_for(settings.sentinel_master, db=settings.redis_db, **options)
    url = redis_url(settings)
    if url.startswith("rediss://"):
        options.update(_tls_options(settings))
    # Explicit options win over what the URL says, except credentials the URL carries.
    client = redis.Redis.from_url(url, **options)
    return client


def follow_master(client: redis.Redis) -> None:
    """With Sentinel: ask where the master is now and drop idle connections to a former one.

    redis-py asks Sentinel only when it opens a connection, and after a planned failover
    (SENTINEL FAILOVER) the old master keeps serving its open connections for about ten
    seconds until Sentinel demotes it; without this the exporter would read stale data for
    that long. One round trip to a Sentinel per scrape; nothing without Sentinel."""
    refresh = getattr(client.connection_pool, "get_master_address", None)
    if refresh is None:
        return
    from redis.sentinel import MasterNotFoundError

    try:
        refresh()
    except MasterNotFoundError:
        # No Sentinel answers: open connections to the master still serve; a new one cannot
        # be made and fails the read (rq_up 0).
        pass
