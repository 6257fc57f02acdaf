"""Evaluation of trained runs, usable without the trainer: find a run and its checkpoint (`discovery`), build its
model through the one factory (`reid.models.factory`), embed tracklets in this process (`extract`), score them
(`scoring`), evaluate a checkpoint on a test split (`evaluate`) and turn that into the HTML report (`reporting`);
the per-epoch validation the training loop calls (`validate`) and the pure halves of Ray Data batch inference
(`chunks`; the Ray driver is `reid.batch_inference`).

Nothing here imports `reid.training` or Ray (tests/test_imports.py checks it): the training side imports this, not
the other way round. Modules are imported by name (this file imports none of them), so reading the validation
code does not load the report's matplotlib.
"""
