"""Where test features are extracted: Ray Data batch inference (`ray`) or the command's own process (`local`).

`auto`, the default of `reid eval` and `reid index`, takes Ray Data where a cluster is configured (`ray.address`,
or `$RAY_ADDRESS`, which every `ray job submit` driver has) or the tracklets are many, and the command's process
otherwise. On the 2-core development machine the command's process was the faster at every size measured
(docs/evaluation.md, "Backends": the demo set's 209 tracklets in 16.6 s against 32.3 s, a local Ray cluster's
start-up included). AUTO_LOCAL_MAX is an estimate for a GPU node, not a measurement: there the command's process
decodes on one core, about 100 MARS-length tracklets a second at 256x128, while Ray Data decodes on as many actors
as the node has cores and starts in about 15 s, which it earns back past 1,000-2,000 tracklets.
"""

from __future__ import annotations

import os

from reid.config.schema import ExperimentConfig

BACKENDS = ("auto", "ray", "local")
AUTO_LOCAL_MAX = 1000
AUTO_HELP = (f"feature extraction as Ray Data batch inference (ray) or in this process (local); auto (default): "
             f"Ray Data on a configured cluster (ray.address, $RAY_ADDRESS) or for more than {AUTO_LOCAL_MAX} "
             f"tracklets, else this process (Ray's start-up would cost more)")


def choose_backend(backend: str, cfg: ExperimentConfig, tracklets: int, *, local_only: str | None = None
                   ) -> tuple[str, str]:
    """(`ray` or `local`, why) for a `--backend` choice; `auto` decides from the config and the number of
    tracklets to embed. `local_only`: why only this process can do the work (auto then takes it)."""
    if backend != "auto":
        return backend, f"--backend {backend}"
    if local_only:
        return "local", local_only
    if cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        return "ray", "a Ray cluster is configured"
    if tracklets > AUTO_LOCAL_MAX:
        return "ray", f"{tracklets} tracklets, more than {AUTO_LOCAL_MAX}"
    return "local", (f"{tracklets} tracklets and no Ray cluster configured: Ray's start-up would cost more than "
                     f"it saves; --backend ray for Ray Data")


def backend_line(backend: str, why: str) -> str:
    """`[reid] features in this process (25 tracklets and ...)`: what `auto` chose, printed before the work."""
    return f"[reid] features {'with Ray Data' if backend == 'ray' else 'in this process'} ({why})"
