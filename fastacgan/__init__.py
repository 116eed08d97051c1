"""fastacgan: a fast, reliable trainer for Auxiliary Classifier GANs (Odena et al., 2017)."""

__version__ = "0.1.0"


def _map_source_kernels() -> None:
    """An installed fastacgan holds the kernels as fastacgan/kernels (setup.py maps the repository's kernels/
    there). A source checkout imported without that mapping (the repository root on sys.path, e.g. `python -m
    fastacgan.train` run there after a non-editable install, or PYTHONPATH=.) finds them at ../kernels."""
    import importlib.abc
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(here), "kernels")
    if os.path.isdir(os.path.join(here, "kernels")) or not os.path.isfile(os.path.join(src, "__init__.py")):
        return

    class _SourceKernels(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != __name__ + ".kernels":
                return None
            return importlib.util.spec_from_file_location(
                name, os.path.join(src, "__init__.py"), submodule_search_locations=[src]
            )

    if not any(type(f).__name__ == "_SourceKernels" for f in sys.meta_path):
        # first: the kernels beside this very package, even where an editable install of another checkout
        # would map fastacgan.kernels elsewhere
        sys.meta_path.insert(0, _SourceKernels())


_map_source_kernels()
