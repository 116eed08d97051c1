"""`python -m fastacgan COMMAND ...`: the package's commands (fastacgan.train, .sample, .evaluate, .plots,
.export) by name. Without one it lists them; Python's own words for a package run as a module ("'fastacgan' is a
package and cannot be directly executed") named none of them."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train an AC-GAN (python -m fastacgan train --amp: on the built-in digits)",
    "sample": "images from a run's checkpoint: a grid, or a folder of them",
    "evaluate": "how good a run's generator is: a judge trained on the real images; D on held-out ones",
    "plots": "draw a run's training curves (curves.png) again",
    "export": "a run's generator as one file that needs torch alone (torch.export)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:  # (its own usage lines say python -m fastacgan.COMMAND, the same)
        return importlib.import_module(f"fastacgan.{argv[0]}").main(argv[1:])
    commands = [f"  {name:<9} {what}" for name, what in COMMANDS.items()]
    usage = "\n".join(["usage: python -m fastacgan COMMAND [options]   (COMMAND --help: its options)", "", *commands])
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    wrong = f"\n\nerror: {argv[0]!r} is not a command" if argv else ""
    if argv and argv[0].startswith("-"):
        wrong = f"\n\nerror: options follow a command: python -m fastacgan train {' '.join(argv)}"
    print(usage + wrong, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
