"""Triton's interpreter (the kernels on CPU tensors, TRITON_INTERPRET=1) across Triton versions, for the tests.

Triton 3.6 (the GPU machines' image ships it with torch 2.11) turns a scalar of a kernel into a Python int with
int() of a one-element array: a kernel argument used as a loop bound (`range(0, K, BLOCK_K)`). numpy 2.4 refuses
that ("only 0-dimensional arrays can be converted to Python scalars"); Triton 3.9 squeezes the array first. This
makes an older interpreter (3.2, torch 2.6's, too) do what 3.9 does. Only the interpreter is touched: compiled
kernels never see it.
"""

import inspect


def fix_interpreter_index() -> bool:
    """Patch the interpreter where it needs it; True if it was patched."""
    try:
        from triton.runtime import interpreter
    except ImportError:  # no Triton, or one without an interpreter
        return False
    patch_tensor = getattr(interpreter, "_patch_lang_tensor", None)
    if patch_tensor is None or getattr(patch_tensor, "squeezes", False):
        return False
    if "squeeze" in inspect.getsource(patch_tensor):  # this Triton's interpreter does it already
        return False

    def patched(tensor, *scope):  # (tensor, scope) since Triton 3.3 or so; (tensor) in 3.2 (torch 2.6's)
        patch_tensor(tensor, *scope)
        index = lambda self: int(self.handle.data.squeeze())  # noqa: E731
        if scope:
            scope[0].set_attr(tensor, "__index__", index)
        else:
            tensor.__index__ = index

    patched.squeezes = True
    interpreter._patch_lang_tensor = patched  # looked up by name each time a kernel is interpreted
    return True
