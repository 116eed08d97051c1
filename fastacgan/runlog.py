"""A training run's log: what it prints, kept in --out/train.log."""

from __future__ import annotations

import sys
from pathlib import Path


class RunLog:
    """The run's lines: printed, and appended to --out/train.log from the moment the run holds its folder; the lines
    before that moment are kept until then (a run refused before it trains writes nothing). A log file that cannot
    be written is given up with a note: the printed lines, the checkpoints and the metrics are what matter."""

    def __init__(self, show):
        self.show, self.early, self.file = show, [], None

    def __call__(self, msg: str) -> None:
        self.show(msg)
        self.record(msg)

    def record(self, msg: str) -> None:
        """Into the file only (what the caller reports on the terminal in its own way: an error)."""
        if self.file is not None:
            self._write(msg)
        elif self.early is not None:
            self.early.append(msg)

    def start(self, path: Path, header: str) -> None:
        try:
            self.file = open(path, "a", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            self.show(f"note: cannot write {path} ({e.strerror or e}); the run goes on without it")
        else:
            for msg in [header, *(self.early or [])]:
                self._write(msg)
        self.early = None

    def _write(self, msg: str) -> None:
        try:
            self.file.write(msg + "\n")
            self.file.flush()
        except OSError as e:
            self.show(f"note: writing {self.file.name} failed ({e.strerror or e}); the run goes on without it")
            self.stop()

    def stop(self) -> None:
        self.early = []  # another run given this log keeps its own early lines again
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.close()
            except OSError:
                pass


def tolerant_console() -> None:
    """File names that are not UTF-8 (a Latin-1 name from an old archive or a Windows share: Python holds its bytes
    as surrogates) are printed with the odd bytes escaped (\\udce9) instead of stopping the command with
    UnicodeEncodeError, where the terminal's locale makes stdout strict (en_US.UTF-8; C.UTF-8 escapes already)."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # (a stream that cannot change now)
                pass
