"""Sentinel: real redis-sentinels watching a master and a replica; SENTINEL FAILOVER while the
exporter runs, and the exporter follows the new master (proven by killing the old one); a dead
Sentinel is passed over for the next one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis
from certs import TlsRedis, make_certs
from rq import Queue

from devkit import free_port, stop_process, wait_for
from support import Exporter, RedisServer, require_tool, short_timeouts

pytestmark = pytest.mark.redis

MASTER = "rqmaster"


class Sentinel:
    def __init__(self, master_port: int, extra: str = "", password: str | None = None,
                 down_after_ms: int = 2000) -> None:
        binary = require_tool("redis-sentinel")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rq-exporter-sentinel-"))
        config = self.dir / "sentinel.conf"  # sentinel rewrites its config: it must be writable
        config.write_text(f"""port {self.port}
bind 127.0.0.1
dir {self.dir}
sentinel monitor {MASTER} 127.0.0.1 {master_port} 1
sentinel down-after-milliseconds {MASTER} {down_after_ms}
sentinel failover-timeout {MASTER} 10000
{extra}""")
        self.process = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=2, decode_responses=True, password=password)
        wait_for(self._pings, what="redis-sentinel")

    def _pings(self) -> bool:
        try:
            return self.client.ping()
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        # SENTINEL MASTER, as redis-py asks: it names the new master only once the failover is
        # complete (GET-MASTER-ADDR-BY-NAME already does while the replica is being promoted).
        reply = self.client.execute_command("SENTINEL", "MASTER", MASTER)
        fields = dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else reply
        return int(fields["port"])

    def replica_ready(self, port: int) -> bool:
        for replica in self.client.execute_command("SENTINEL", "REPLICAS", MASTER):
            fields = dict(zip(replica[::2], replica[1::2])) if isinstance(replica, list) else replica
            if int(fields["port"]) == port and fields["flags"] == "slave" and fields.get("master-link-status") == "ok":
                return True
        return False

    def stop(self) -> None:
        stop_process(self.process, 10)
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    master = RedisServer().start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port)).start()
    sentinels = []
    try:
        sentinels.append(Sentinel(master.port))
        sentinels.append(Sentinel(master.port))
        yield master, replica, sentinels
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        replica.cleanup()
        master.cleanup()


def _smembers_calls(server: RedisServer) -> int:
    return server.client().info("commandstats").get("cmdstat_smembers", {}).get("calls", 0)


@pytest.mark.slow
def test_exporter_follows_a_sentinel_failover(cluster):
    master, replica, (sentinel, second) = cluster
    Queue("before", connection=master.client()).enqueue("jobs.sleep_for", 0)
    exporter = Exporter("--sentinel-host", f"127.0.0.1:{sentinel.port},127.0.0.1:{second.port}",
                        "--sentinel-master", MASTER,
                        *short_timeouts())
    try:
        # The exporter's start-up check reads once in the background: let it finish first.
        wait_for(lambda: _smembers_calls(master) >= 2, what="the start-up read")
        calls = _smembers_calls(master)
        first = exporter.scrape()
        assert first.value("rq_up") == 1
        assert first.value("rq_jobs", queue="before", status="queued") == 1
        # One scrape, one read on the master: SMEMBERS of the queue set, the worker set and RQ
        # 3.0's rate limit keys.
        assert _smembers_calls(master) - calls == 3, calls

        wait_for(lambda: sentinel.replica_ready(replica.port), timeout=30, interval=0.2,
                 what="sentinel to see the replica in sync")
        sentinel.client.execute_command("SENTINEL", "FAILOVER", MASTER)
        wait_for(lambda: sentinel.master_port() == replica.port, timeout=30, interval=0.1,
                 what="sentinel to promote the replica")
        wait_for(lambda: replica.client().info("replication")["role"] == "master", timeout=15)

        Queue("after", connection=replica.client()).enqueue("jobs.sleep_for", 0)
        # The old master still serves open connections for ~10 s until Sentinel demotes it;
        # the exporter asks Sentinel on every scrape, so it moves at once.
        calls = _smembers_calls(replica)
        moved = exporter.scrape()
        assert moved.value("rq_up") == 1
        assert moved.value("rq_jobs", queue="after", status="queued") == 1
        assert _smembers_calls(replica) - calls == 3

        master.stop()  # the old master is gone for good: only the new one can answer
        later = exporter.scrape()
        assert later.value("rq_up") == 1
        assert later.value("rq_jobs", queue="after", status="queued") == 1
        assert later.value("rq_jobs", queue="before", status="queued") == 1

        # The first Sentinel gone: the second one answers, also for a new connection.
        wait_for(lambda: second.master_port() == replica.port, timeout=15, interval=0.1,
                 what="the second Sentinel to learn of the failover")
        sentinel.process.kill()
        sentinel.process.wait()
        replica.client().client_kill_filter(_type="normal", skipme=True)  # the exporter must reconnect
        wait_for(lambda: exporter.scrape().value("rq_up") == 1, timeout=5, interval=0.1,
                 what="a new connection found through the second Sentinel")
        # Both Sentinels gone: the open connection to the master still serves ...
        second.process.kill()
        second.process.wait()
        assert exporter.scrape().value("rq_up") == 1
        # ... and with the master gone too, scrapes answer rq_up 0 within the timeouts.
        replica.stop()
        assert exporter.scrape(timeout=8).value("rq_up") == 0
    finally:
        log = exporter.stop()
    assert "Traceback" not in log


def test_password_protected_sentinel_and_master():
    master = RedisServer().start()
    master.client().config_set("requirepass", "master-pw")
    sentinel = Sentinel(master.port, extra=f"requirepass sentinel-pw\nsentinel auth-pass {MASTER} master-pw\n",
                        password="sentinel-pw", down_after_ms=30_000)
    Queue("locked", connection=master.client(password="master-pw")).enqueue("jobs.sleep_for", 0)
    common = ["--sentinel-host", f"127.0.0.1:{sentinel.port}", "--sentinel-master", MASTER,
              "--redis-password", "master-pw", *short_timeouts()]
    good = Exporter(*common, "--sentinel-password", "sentinel-pw")
    bad = Exporter(*common, "--sentinel-password", "wrong")
    try:
        # Sentinel may call a master down for a while on a busy machine (down-after 2 s): the
        # exporter answers rq_up 0 then, and 1 once Sentinel names the master again.
        samples = wait_for(lambda: (s := good.scrape()).value("rq_up") == 1 and s, timeout=20,
                           what="rq_up 1 through Sentinel")
        assert samples.value("rq_jobs", queue="locked", status="queued") == 1
        assert bad.scrape().value("rq_up") == 0
    finally:
        logs = good.stop() + bad.stop()
        sentinel.stop()
        master.cleanup()
    assert "sentinel-pw" not in logs and "master-pw" not in logs


def test_sentinel_with_a_tls_master(tmp_path):
    """The master serves TLS only; Sentinel watches it over TLS; the exporter finds it through
    Sentinel and connects with the --redis-tls-* files."""
    certs = make_certs(tmp_path / "certs")
    master = TlsRedis(certs, verify_clients=False).start()
    # No failover here: a long down-after, so that Sentinel does not call the master down (and
    # redis-py find no master) when a TLS ping is late on a busy machine.
    sentinel = Sentinel(master.port, extra="\n".join([
        f"tls-cert-file {certs.server_cert}", f"tls-key-file {certs.server_key}", f"tls-ca-cert-file {certs.ca}",
        "tls-replication yes", ""]), down_after_ms=30_000)
    Queue("secure", connection=master.client(socket_timeout=1)).enqueue("jobs.sleep_for", 0)
    exporter = Exporter("--sentinel-host", f"127.0.0.1:{sentinel.port}", "--sentinel-master", MASTER,
                        "--redis-tls-ca-file", str(certs.ca), *short_timeouts())
    plain = Exporter("--sentinel-host", f"127.0.0.1:{sentinel.port}", "--sentinel-master", MASTER,
                     *short_timeouts())
    try:
        # Sentinel may call a master down for a while on a busy machine (down-after 2 s): the
        # exporter answers rq_up 0 then, and 1 once Sentinel names the master again.
        samples = wait_for(lambda: (s := exporter.scrape()).value("rq_up") == 1 and s, timeout=20,
                           what="rq_up 1 through Sentinel")
        assert samples.value("rq_jobs", queue="secure", status="queued") == 1
        assert plain.scrape().value("rq_up") == 0  # without the TLS files: plain TCP, refused
    finally:
        exporter.stop()
        plain.stop()
        sentinel.stop()
        master.cleanup()
