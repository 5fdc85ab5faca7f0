"""The one read of a settled registry with one TTL, packed from a template, many registries a group.

Such a registry (most registries, most scrapes: every idle queue's two) reads one score window,
the probe above it riding in the same read: ``ZRANGEBYSCORE <key> <low> (inf|+inf WITHSCORES``.
At 10,000 queues that is 20,000 commands a scrape that differ only by the queue's name inside the
key and by ``low``, and ``low`` is the same for nearly all of them (an idle registry's cursor is
the last scrape's time). So a run of them is one ``batch.Packed`` group: each read packed with one
bytes ``%`` format (one a status and probe), its ``low`` packed by hiredis once a value, their
replies taken by one function (reads.py), instead of a command tuple, a closure, a batch entry and
a ``hiredis.pack_command`` call each. A format is made from hiredis' own packing of each argument
and checked against hiredis on a sample key (with ``%`` and non-UTF-8 bytes); where one differs,
or without hiredis, the group is packed command by command.
tests/concerns/timing/test_timing_windows.py checks ``packed()`` equals hiredis' packing of
``commands()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rq_exporter_ng.batch import Packed, hiredis
from rq_exporter_ng.concerns.timing.records import Probe, RegistryPlan

RUN = 500  # registries a group (~35 kB packed; the batch sends ~1,000 commands at a time)

# Where the window's read ends, by probe mode (Probe.ALONE: at the window's top, a read of its own).
WINDOW_TOP = {Probe.IN_WINDOW: "(inf", Probe.IN_WINDOW_WITH_FOREVER: "+inf"}

_SAMPLE = b"%s %d \xff queue"
_SAMPLE_LOW = 1_767_225_600


def window_read(rp: RegistryPlan, key: bytes) -> tuple:
    """The one read of a registry whose probe rides in its only window's read."""
    return ("ZRANGEBYSCORE", key, rp.windows[0].low, WINDOW_TOP[rp.probe], "WITHSCORES")


def _argument(value: Any) -> bytes:
    """One argument as hiredis packs it: ``$<length>\\r\\n<bytes>\\r\\n``."""
    return hiredis.pack_command((value,))[4:]  # without "*1\r\n"


class WindowTemplate:
    """One scrape's window reads: ``group(registries)`` is a ``batch.Packed`` of their reads."""

    __slots__ = ("_formats", "_lows", "prefixes")

    def __init__(self, prefixes: Mapping[str, bytes]) -> None:
        self.prefixes = prefixes  # status -> key prefix
        self._lows: dict[int, bytes] = {}  # low -> its argument, packed by hiredis
        # status -> (format, length of the key prefix), by probe: (Probe.IN_WINDOW, IN_WINDOW_WITH_FOREVER)
        self._formats: dict[str, tuple[tuple[bytes, int], ...]] | None = None
        if hiredis is not None:
            self._formats = self._made()

    def _made(self) -> dict[str, tuple[tuple[bytes, int], ...]] | None:
        formats = {}
        for status in ("finished", "failed"):
            prefix, made = self.prefixes[status], []
            for top in (WINDOW_TOP[Probe.IN_WINDOW], WINDOW_TOP[Probe.IN_WINDOW_WITH_FOREVER]):
                text = (b"*5\r\n" + _argument("ZRANGEBYSCORE") + b"$%d\r\n" + prefix.replace(b"%", b"%%")
                        + b"%b\r\n%b" + (_argument(top) + _argument("WITHSCORES")).replace(b"%", b"%%"))
                sample: Any = ("ZRANGEBYSCORE", prefix + _SAMPLE, _SAMPLE_LOW, top, "WITHSCORES")  # (stubs: a 1-tuple)
                if text % (len(prefix) + len(_SAMPLE), _SAMPLE, _argument(_SAMPLE_LOW)) != hiredis.pack_command(sample):
                    return None
                made.append((text, len(prefix)))
            formats[status] = tuple(made)
        return formats

    def commands(self, registries: Sequence[RegistryPlan]) -> list[tuple]:
        prefixes = self.prefixes
        return [window_read(rp, prefixes[rp.status] + rp.raw) for rp in registries]

    def pack(self, registries: Sequence[RegistryPlan]) -> bytes:
        formats = self._formats
        if formats is None:
            return b"".join(map(hiredis.pack_command, self.commands(registries)))
        lows, out, forever = self._lows, [], Probe.IN_WINDOW_WITH_FOREVER
        for rp in registries:
            low = rp.windows[0].low
            argument = lows.get(low) if type(low) is int else None  # a float equal to an int packs otherwise
            if argument is None:
                argument = _argument(low)
                if type(low) is int:
                    lows[low] = argument
            text, length = formats[rp.status][rp.probe is forever]  # (a dict of Enum keys: a Python __hash__)
            raw = rp.raw
            out.append(text % (length + len(raw), raw, argument))
        return b"".join(out)

    def group(self, registries: Sequence[RegistryPlan]) -> WindowReads:
        return WindowReads(self, registries)


class WindowReads(Packed):
    """The window reads of a run of registries, packed when the batch sends them."""

    __slots__ = ("registries", "template")

    def __init__(self, template: WindowTemplate, registries: Sequence[RegistryPlan]) -> None:
        super().__init__()
        self.template = template
        self.registries = registries

    def packed(self) -> bytes:
        return self.template.pack(self.registries)

    def commands(self) -> Sequence[tuple]:
        return self.template.commands(self.registries)

    def __len__(self) -> int:
        return len(self.registries)
