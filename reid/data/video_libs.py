"""decord, loaded so that its bundled FFmpeg and x264 stay its own.

decord's wheel loads `libdecord.so` with `RTLD_GLOBAL` (decord/_ffi/base.py), which puts its bundled libavcodec 58
and libx264 (build 164) into the process's global symbol scope. PyAV (the synthetic generator's and the packer's
encoder) bundles libavcodec 62 and libx264 build 165 and resolves x264's functions lazily: in a process that
imported decord first, PyAV's encoder opens with `x264_encoder_open_165` but then calls decord's
`x264_encoder_encode` and `x264_param_*` (build 164) on it. That is undefined behaviour; what it was seen to do is
change x264's rate control part-way through a dataset, so `reid synth` in such a process (the test suite's) wrote
other bytes than in a fresh process (tests/data/test_video_libs.py shows the bindings with LD_DEBUG).

`decord()` imports decord with its library loaded `RTLD_LOCAL` (decord calls every native function through its own
handle, so nothing needs it global) and PyAV first. Every module of the project imports decord through it.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def decord() -> ModuleType:
    """The decord module, its native libraries private to it (module docstring)."""
    module = sys.modules.get("decord")
    if module is not None:
        return module
    with _LOCK:
        try:
            import av  # noqa: F401  (PyAV's own libraries loaded first, as a second line of defence)
        except ImportError:
            pass  # a decode-only node without PyAV: no encoder in this process for decord's libraries to shadow

        global_flag = ctypes.RTLD_GLOBAL
        ctypes.RTLD_GLOBAL = ctypes.RTLD_LOCAL  # read by decord/_ffi/base.py as it loads libdecord.so
        try:
            import decord as module
        finally:
            ctypes.RTLD_GLOBAL = global_flag
    return module
