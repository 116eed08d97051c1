"""tests/triton_compat.py: an older Triton interpreter's int() of a one-element array, squeezed first."""

import numpy as np
import pytest
import triton_compat

interpreter = pytest.importorskip("triton.runtime.interpreter")


class Scope:  # the interpreter's _LangPatchScope: records what it sets
    def set_attr(self, obj, name, value):
        setattr(obj, name, value)


class Handle:
    def __init__(self, data):
        self.data = data


def test_an_interpreter_without_the_squeeze_is_patched_once(monkeypatch):
    def old_patch(tensor, scope):  # Triton 3.6's
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data))
        scope.set_attr(tensor, "marker", "old")

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", old_patch)

    class Tensor:
        def __init__(self, data):
            self.handle = Handle(data)

    assert triton_compat.fix_interpreter_index()
    assert not triton_compat.fix_interpreter_index()  # already patched: not wrapped twice
    interpreter._patch_lang_tensor(Tensor, Scope())
    assert Tensor.marker == "old"  # the original patches still made
    assert range(0, Tensor(np.array([5], dtype=np.int32))) == range(5)  # a kernel argument as a loop bound
    assert range(0, Tensor(np.array(7))) == range(7)


def test_triton_3_2s_interpreter_is_patched_too(monkeypatch):
    def old_patch(tensor):  # Triton 3.2's (torch 2.6's): no scope, the attributes set on the class
        tensor.__index__ = lambda self: int(self.handle.data)

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", old_patch)

    class Tensor:
        def __init__(self, data):
            self.handle = Handle(data)

    assert triton_compat.fix_interpreter_index()
    interpreter._patch_lang_tensor(Tensor)
    assert range(0, Tensor(np.array([5], dtype=np.int32))) == range(5)


def test_an_interpreter_that_squeezes_is_left_alone(monkeypatch):
    def new_patch(tensor, scope):  # Triton 3.9's
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", new_patch)
    assert not triton_compat.fix_interpreter_index()
    assert interpreter._patch_lang_tensor is new_patch
