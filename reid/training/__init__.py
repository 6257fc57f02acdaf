"""The training spine: config -> model + objective -> the per-worker loop on Ray Train (or in-process)."""
