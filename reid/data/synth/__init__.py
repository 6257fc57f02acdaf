"""`reid synth`: the synthetic video re-ID dataset generator (the project's embedded default dataset).

Python API:
    generate(out_dir, preset="tiny", seed=0, workers=1, **knobs) -> Path        the manifest path
    ensure_dataset(out_dir, preset="demo", seed=0, workers=1, **knobs) -> Path  generate only if missing
    write_layout(out_dir, layout, seed=0, workers=1, **knobs) -> Path           tiny MARS / iLIDS-VID / PRID / Duke
        trees (+ layout.json with the counts a loader must reproduce; old_names=True for Duke, persons=N for iLIDS)
    binary_attributes(attrs) -> dict[str, int]                                  CSV classes -> source-domain binaries

With workers > 1, rendering runs in spawned processes: call from under `if __name__ == "__main__":` in scripts.

Modules: identities (attribute sampling), skeleton (motion, COCO-18), render (one person), scene (cameras,
nuisances, one tracklet), video (H.264 encode / decode), plan (who appears where, roles), generate
(orchestration), presets (knobs), source_domain (image-level attribute set), layouts (real-dataset layouts).
"""

from reid.data.synth.generate import CSV_COLUMNS, GENERATOR_VERSION, MARS_COLUMNS, ensure_dataset, generate
from reid.data.synth.layouts import LAYOUTS, write_layout
from reid.data.synth.presets import KNOB_NAMES, PRESETS, SUITES, SynthConfig, make_config
from reid.data.synth.source_domain import BINARY_GROUPS, binary_attributes

__all__ = [
    "BINARY_GROUPS", "CSV_COLUMNS", "GENERATOR_VERSION", "KNOB_NAMES", "LAYOUTS", "MARS_COLUMNS", "PRESETS",
    "SUITES", "SynthConfig", "binary_attributes", "ensure_dataset", "generate", "make_config", "write_layout",
]
