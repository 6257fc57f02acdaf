"""decord's bundled x264 must not serve PyAV's encoder (reid/data/video_libs.py): checked on the dynamic linker's
own record of symbol bindings (LD_DEBUG=bindings) in a fresh interpreter that decodes with decord first, then
encodes with PyAV, as `reid prepare --pack video` and the test suite's process do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
{load}
from reid.data.synth.video import decode_decord, encode_video
frames = (np.random.default_rng(0).random((10, 64, 32, 3)) * 255).astype(np.uint8)
encode_video({path!r}, frames)
assert decode_decord({path!r}).shape == (10, 64, 32, 3)
"""
LOADERS = {
    "project": "from reid.data.video_libs import decord; decord()",
    "plain import": "import decord",  # the hazard itself: decord loads its libraries RTLD_GLOBAL
}


def _x264_bindings_of_pyav(tmp_path, loader: str) -> list[str]:
    """The x264 symbols PyAV's libavcodec was bound to, one line each: 'symbol -> folder/library file'."""
    code = SCRIPT.format(load=LOADERS[loader], path=str(tmp_path / "clip.mp4"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LD_DEBUG": "bindings"})
    assert out.returncode == 0, out.stderr[-3000:]
    found = []
    for line in out.stderr.splitlines():  # "binding file <from> [0] to <to> [0]: normal symbol `x264_...'"
        if "binding file" in line and "av.libs/libavcodec" in line and "symbol `x264_" in line:
            target = line.split(" to ", 1)[1].split(" [", 1)[0]
            library = os.path.join(os.path.basename(os.path.dirname(os.path.normpath(target))), os.path.basename(target))
            found.append(f"{line.rsplit('`', 1)[1].rstrip(chr(39))} -> {library}")  # e.g. decord.libs/libx264-...
    return found


@pytest.mark.timeout(300)
def test_pyav_encodes_with_its_own_x264_after_decord_was_loaded(tmp_path):
    bound = _x264_bindings_of_pyav(tmp_path, "project")
    assert any("x264_encoder_encode" in b for b in bound), bound  # the check sees the bindings at all
    assert all("decord" not in b.split(" -> ")[1] for b in bound), bound


@pytest.mark.timeout(300)
def test_a_plain_decord_import_still_captures_pyavs_encoder(tmp_path):
    """The control: the check above fails without the project's loader. If a decord release stops loading its
    libraries globally, this fails, and reid/data/video_libs.py can go."""
    bound = _x264_bindings_of_pyav(tmp_path, "plain import")
    assert any(b.startswith("x264_encoder_encode ->") and "decord" in b for b in bound), bound
