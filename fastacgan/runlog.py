"""A training run's log: what it prints, kept in --out/train.log; and what the commands print, or do not, when the
console has gone or a Ctrl-C ends them."""

from __future__ import annotations

import functools
import gc
import os
import sys
import traceback
import warnings
from pathlib import Path

from PIL import Image


def echo(msg: str, stream=None) -> None:
    """print(msg), flushed. Where the console is gone (the reader of a pipe ended: `| tee` stopped by the same
    Ctrl-C, `| head` that has its lines; the terminal closed: EIO; a redirect to a full disk), the stream is sent to
    /dev/null, so that neither later prints nor the flush at exit fail again, and the OSError raised for the caller
    to say so once."""
    stream = stream or sys.stdout
    try:
        print(msg, file=stream, flush=True)
    except OSError:
        mute(stream)
        raise


def echo_quietly(msg: str, stream=None) -> bool:
    """echo, giving up silently on a console that is gone (the last words of a command: nowhere else to say them).
    Returns whether it was printed."""
    try:
        echo(msg, stream)
    except OSError:
        return False
    return True


def mute(stream) -> None:
    """Point the stream's file descriptor at /dev/null (its pending bytes go there too)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # (no descriptor: a test's capture; it fails again, is caught again)
        pass


class RunLog:
    """The run's lines: printed, and appended to --out/train.log from the moment the run holds its folder; the lines
    before that moment are kept until then (a run refused before it trains writes nothing). A log file that cannot
    be written is given up with a note: the printed lines, the checkpoints and the metrics are what matter. A console
    that goes away (the terminal closed, `| tee` ended by the Ctrl-C that stops the run) ends the printing, not the
    run: the log file goes on."""

    def __init__(self, show=echo):
        self.show, self.early, self.file = show, [], None

    def __call__(self, msg: str) -> None:
        self._show(msg)
        self.record(msg)

    def _show(self, msg: str) -> None:
        if self.show is None:
            return
        try:
            self.show(msg)
        except OSError as e:  # the console is gone (see echo): the run goes on, and so does its log file
            self.show = None
            kept = (f"; its lines go on into {self.file.name}" if self.file is not None
                    else "; its lines go on into train.log" if self.early is not None else "")  # fmt: skip
            note = f"note: printing failed ({e.strerror or e}): the run goes on{kept}"
            echo_quietly(note, sys.stderr)
            self.record(note)

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
            self._show(f"note: cannot write {path} ({e.strerror or e}); the run goes on without it")
        else:
            for msg in [header, *(self.early or [])]:
                self._write(msg)
        self.early = None

    def _write(self, msg: str) -> None:
        try:
            self.file.write(msg + "\n")
            self.file.flush()
        except OSError as e:
            self._show(f"note: writing {self.file.name} failed ({e.strerror or e}); the run goes on without it")
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


def let_go_quietly(e: BaseException) -> None:
    """Free what the interrupted work held (the decoding loop's DataLoader iterator, whose finalizer shuts its
    workers down) now, before the abort line, where another Ctrl-C cuts that shutdown short silently: it ran when
    the exception was let go of, after the line, and printed "Exception ignored in: <function
    _MultiProcessingDataLoaderIter.__del__ ...>" with a KeyboardInterrupt traceback. (The workers are daemons: they
    end with the process either way.)"""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: None if issubclass(u.exc_type, KeyboardInterrupt) else hook(u)
    try:
        traceback.clear_frames(e.__traceback__)  # (the frames still running, main's own, are left as they are)
        gc.collect()  # (what a reference cycle holds)
    except KeyboardInterrupt:  # one more, outside any finalizer: the rest is freed at exit
        pass
    finally:
        sys.unraisablehook = hook


def _own(filename: str) -> bool:
    """Whether a warning was given in fastacgan's code (or its kernels', a package of their own in a checkout)."""
    kernels = sys.modules.get("fastacgan.kernels")
    where = [os.path.dirname(os.path.abspath(p)) for p in (__file__, getattr(kernels, "__file__", None)) if p]
    return any(os.path.abspath(filename).startswith(d + os.sep) for d in where)


# PyTorch's DataLoader on more workers than cores, said twice (at its start and at its first batch) with its path
DATALOADER_WORKERS = r"This DataLoader will create \d+ worker processes in total"


def plain_warnings(main):
    """A command's main, whose warnings from fastacgan's code (an image skipped, a fallback taken) print as
    `warning: ...` lines, as its other lines do, not in Python's form (`/.../fastacgan/decode.py:345: UserWarning:
    skipped ...` and the source line of the call, which read as a crash); other packages' keep Python's form, which
    says where they come from. (warnings.formatwarning: a test's pytest.warns still records them.)"""

    @functools.wraps(main)
    def run(*args, **kwargs):
        default = warnings.formatwarning

        def plain(message, category, filename, lineno, line=None):
            if category is UserWarning and _own(filename):
                return f"warning: {message}\n"
            return default(message, category, filename, lineno, line)

        warnings.formatwarning = plain
        try:
            with warnings.catch_warnings():  # said once by workers.workers_note, in a line of ours
                warnings.filterwarnings("ignore", DATALOADER_WORKERS, UserWarning)
                # PIL's warning for an image of 89 to 179 megapixels ("could be decompression bomb DOS attack"),
                # which is read (and scaled down) all the same; a larger one is skipped, saying so
                warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
                return main(*args, **kwargs)
        finally:
            warnings.formatwarning = default

    return run
