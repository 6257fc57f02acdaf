"""The report's training curves (reid/evaluation/training_curves.py): what is drawn is the history, as given."""

from __future__ import annotations

import numpy as np

from reid.evaluation.training_curves import best_epoch, loss_keys, training_figure


def _history() -> list[dict]:
    # validation every 2nd epoch, as with train.eval_every=2; epoch 4 and 6 tie on mAP
    out = []
    for e in range(1, 7):
        h = {"epoch": e, "train/loss": 5.0 - 0.5 * e, "train/triplet": 1.0 / e, "train/ce": 4.0 - 0.4 * e,
             "clips_per_s": 2.0 if e == 1 else 5.0, "data_wait_s": 0.3 if e == 1 else 0.003}
        if e % 2 == 0:
            h.update({"val/mAP": {2: 30.0, 4: 55.0, 6: 55.0}[e], "val/R1": 40.0 + e, "val/queries": 32})
        out.append(h)
    return out


def test_the_total_loss_comes_first_then_the_terms_by_name():
    assert loss_keys(_history()) == ["train/loss", "train/ce", "train/triplet"]


def test_the_best_epoch_is_the_first_highest_validation_map():
    assert best_epoch(_history()) == (4, 55.0)
    assert best_epoch([{"epoch": 1, "train/loss": 1.0}]) is None
    assert best_epoch([{"epoch": 1, "val/mAP": float("nan")}, {"epoch": 2, "val/mAP": 3.0}]) == (2, 3.0)


def test_each_panel_draws_its_series_at_their_epochs():
    hist = _history()
    fig = training_figure(hist)
    loss_ax, val_ax, speed_ax = fig.axes[:3]
    assert [ln.get_label() for ln in loss_ax.lines] == ["loss", "ce", "triplet"]
    np.testing.assert_allclose(loss_ax.lines[0].get_xydata(), [[e, 5.0 - 0.5 * e] for e in range(1, 7)])
    mAP = next(ln for ln in val_ax.lines if ln.get_label() == "mAP")
    np.testing.assert_allclose(mAP.get_xydata(), [[2, 30.0], [4, 55.0], [6, 55.0]])  # only validated epochs
    best_line = next(ln for ln in val_ax.lines if ln.get_linestyle() == ":")
    assert best_line.get_xdata()[0] == 4
    assert speed_ax.lines[0].get_ydata().tolist() == [2.0] + [5.0] * 5
    wait = fig.axes[3].lines[0]  # the twin axis: data wait in ms
    np.testing.assert_allclose(wait.get_ydata(), [300.0] + [3.0] * 5)


def test_panels_without_data_are_left_out():
    only_loss = [{"epoch": e, "train/loss": 1.0 / e} for e in (1, 2)]
    assert len(training_figure(only_loss).axes) == 1
    assert training_figure([]) is None
    assert training_figure([{"epoch": 1, "val/mAP": 3.0}]) is None  # no loss: nothing to draw


def test_the_validation_panel_names_the_best_epoch():
    assert training_figure(_history()).axes[1].get_title() == "validation: best mAP 55.0, epoch 4"
