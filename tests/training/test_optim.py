import pytest
import torch

from reid.config.schema import OptimConfig, SchedulerConfig
from reid.errors import ReidError
from reid.training.optim import build_optimizer, build_scheduler, lr_factor


def test_step_decay_every_40_epochs():
    cfg = SchedulerConfig(name="step", step_size=40, gamma=0.1)
    assert [lr_factor(e, cfg, 100) for e in (0, 39, 40, 79, 80)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_multistep_with_warmup():
    cfg = SchedulerConfig(name="multistep", milestones=[100, 250, 350], gamma=0.1, warmup_epochs=10,
                          warmup_factor=0.01)
    assert lr_factor(0, cfg, 700) == pytest.approx(0.01)
    assert lr_factor(5, cfg, 700) == pytest.approx(0.01 * 0.5 + 0.5)
    assert lr_factor(10, cfg, 700) == 1.0
    assert lr_factor(100, cfg, 700) == pytest.approx(0.1)
    assert lr_factor(350, cfg, 700) == pytest.approx(1e-3)


def test_scheduler_follows_factor():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.05))
    sched = build_scheduler(opt, SchedulerConfig(name="step", step_size=2, gamma=0.1), 10)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005])


def test_lr_mult_groups_by_longest_prefix():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, lr_mult={"0": 0.1, "0.bias": 2.0}))
    groups = {g["lr_mult"]: (g["lr"], len(g["params"])) for g in opt.param_groups}
    assert set(groups) == {0.1, 2.0, 1.0}
    assert groups[0.1][0] == pytest.approx(0.01) and groups[0.1][1] == 1  # 0.weight
    assert groups[2.0][0] == pytest.approx(0.2) and groups[2.0][1] == 1   # 0.bias: the longer prefix wins
    assert groups[1.0][1] == 2


def test_lr_mult_prefix_that_matches_nothing_is_an_error():
    with pytest.raises(ReidError, match="nothere"):
        build_optimizer(torch.nn.Linear(2, 2), OptimConfig(lr_mult={"nothere": 0.1}))
