import logging

import torchvision

from reid.models import backbones
from reid.training.ray_session import quiet_model_logs, quiet_train_reports


def test_only_rank_0_logs_what_building_the_model_did(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached ImageNet weights: the warning every rank would log
    model = torchvision.models.resnet18(weights=None)
    try:
        with caplog.at_level(logging.INFO):
            quiet_model_logs(1)
            backbones.load_imagenet_weights(model, 18, None)
            assert not [r for r in caplog.records if r.name.startswith("reid.models")]
            quiet_model_logs(0)
            backbones.load_imagenet_weights(model, 18, None)
            assert [r.levelno for r in caplog.records if r.name == "reid.models.backbones"] == [logging.WARNING]
            quiet_model_logs(2)
            logging.getLogger("reid.models.factory").error("a real error still shows")
            assert caplog.records[-1].getMessage() == "a real error still shows"
    finally:
        logging.getLogger("reid.models").setLevel(logging.NOTSET)


def test_the_misnamed_train_report_logger_is_quieted_in_workers():
    from ray.train.v2._internal.execution import context

    quiet_train_reports()
    assert logging.getLogger(context.__file__).getEffectiveLevel() == logging.WARNING
