"""The RESP of many same-shaped groups of commands (a queue's 13 reads), built from one template.

hiredis packs a command in ~0.35 us; a queue's reads differ from the next queue's only by the
name inside their keys, so the whole group is one bytes ``%`` format a queue, the arguments'
lengths written in once per length of name (~0.7 us a queue instead of ~6 us). The template is
made by hiredis itself: the group is packed with a marker for the name, and each argument
holding it becomes a slot for the name and its length. A template that does not reproduce
hiredis' packing of a sample group is not used (``template`` gives None and the group is packed
command by command), nor is one without hiredis (redis-py's pipeline sends the commands).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rq_exporter_ng.batch import Packed, hiredis

Commands = Callable[[bytes], Sequence[tuple]]  # a name (as in Redis) -> its group's commands

_MARK = b"\x00\xfe<name>\xfe\x00"  # stands for the name while the template is built
_SAMPLE = b"%s %d \xff queue"  # checked against hiredis: a name with format characters and no UTF-8
_KEPT_LENGTHS = 512  # formats kept, one per length of name (~700 bytes each for a queue's reads)


class Template:
    """Packs ``commands(name)`` for any name: ``group(name)`` is a ``batch.Packed``."""

    __slots__ = ("_by_length", "_pieces", "_slots", "commands", "size")

    def __init__(self, commands: Commands, pieces: list[bytes | tuple[int, bytes, bytes]], size: int) -> None:
        self.commands = commands
        self.size = size  # commands in a group
        # RESP as it is (bytes) and, for each argument holding the name, (its length without the
        # name, what comes before the name, after it).
        self._pieces = pieces
        self._slots = sum(1 for piece in pieces if isinstance(piece, tuple))
        self._by_length: dict[int, bytes] = {}

    def pack(self, name: bytes) -> bytes:
        # Only the name is left to put in: the lengths are written in a format made once per
        # length of name (queues' names have few lengths), filled from a tuple rather than a dict
        # (3.9 -> ~1 us a queue on this machine, bench in docs/benchmarks.md).
        text = self._by_length.get(len(name))
        if text is None:
            text = self._format(len(name))
            if len(self._by_length) < _KEPT_LENGTHS:
                self._by_length[len(name)] = text
        return text % ((name,) * self._slots)

    def _format(self, n: int) -> bytes:
        out = []
        for piece in self._pieces:
            if isinstance(piece, tuple):
                length, before, after = piece
                out.append(b"$%d\r\n" % (n + length) + before.replace(b"%", b"%%") + b"%s"
                           + after.replace(b"%", b"%%") + b"\r\n")
            else:
                out.append(piece.replace(b"%", b"%%"))
        return b"".join(out)

    def group(self, name: bytes) -> Group:
        return Group(self, name)

    def run(self, names: Sequence[bytes]) -> Run:
        return Run(self, names)


class Group(Packed):
    """The group of one name, packed from its template when sent."""

    __slots__ = ("name", "template")

    def __init__(self, template: Template, name: bytes) -> None:
        super().__init__()
        self.template = template
        self.name = name

    def packed(self) -> bytes:
        return self.template.pack(self.name)

    def commands(self) -> Sequence[tuple]:
        return self.template.commands(self.name)

    def __len__(self) -> int:
        return self.template.size


def template(commands: Commands) -> Template | None:
    """A template of ``commands``, or None when it cannot reproduce hiredis' packing (the name
    twice in one argument, or the marker's bytes in a key prefix)."""
    if hiredis is None:
        return None
    pieces: list[bytes | tuple[int, bytes, bytes]] = []
    marked = commands(_MARK)
    for command in marked:
        pieces.append(b"*%d\r\n" % len(command))
        for argument in command:
            packed = hiredis.pack_command((argument,))  # *1\r\n$<length>\r\n<argument>\r\n, as hiredis encodes it
            value = packed[packed.index(b"\r\n", 4) + 2:-2]
            if _MARK not in value:
                pieces.append(packed[4:])
                continue
            before, _, after = value.partition(_MARK)
            if _MARK in after:
                return None
            pieces.append((len(before) + len(after), before, after))
    found = Template(commands, pieces, len(marked))
    if found.pack(_SAMPLE) != b"".join(map(hiredis.pack_command, commands(_SAMPLE))):
        return None
    found._by_length.clear()  # the sample's length is no queue's
    return found


def run_of(found: Template | None, commands: Commands, names: Sequence[bytes]) -> Sequence[tuple]:
    """The groups of ``names`` as one group: packed from ``found`` (a ``Run``), or, where no
    template could be made, their commands as they are."""
    if found is not None:
        return found.run(names)
    return [command for name in names for command in commands(name)]


class Run(Packed):
    """The groups of many names, one after the other, as one group: the batch hands their replies
    out in one list (its per-group work, ~2 us a queue, is done once a run)."""

    __slots__ = ("names", "template")

    def __init__(self, template: Template, names: Sequence[bytes]) -> None:
        super().__init__()
        self.template = template
        self.names = names

    def packed(self) -> bytes:
        return b"".join(map(self.template.pack, self.names))

    def commands(self) -> Sequence[tuple]:
        commands = self.template.commands
        return [command for name in self.names for command in commands(name)]

    def __len__(self) -> int:
        return self.template.size * len(self.names)
