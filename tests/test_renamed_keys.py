"""Renamed config keys (issue #12): the old spelling is refused with the new name; saved runs still load."""

import pytest
import yaml

from noisyclr.config import config_to_dict, load_config, load_saved_config
from noisyclr.errors import UserError


def test_old_lr_ramp_key_is_refused_with_the_new_name():
    with pytest.raises(UserError, match=r"'train.warmup_epochs' is now 'train.lr_warmup_epochs'.*method.warmup_epochs"):
        load_config("standard-ce-digits-sym50", ["train.warmup_epochs=1"])
    cfg = load_config("dividemix-digits-sym50", ["train.lr_warmup_epochs=0.5", "method.warmup_epochs=3"])
    assert cfg.train.lr_warmup_epochs == 0.5 and cfg.method.warmup_epochs == 3


def test_a_config_saved_before_the_rename_loads_under_the_new_name(tmp_path):
    raw = config_to_dict(load_config("dividemix-digits-sym50"))
    raw["train"]["warmup_epochs"] = raw["train"].pop("lr_warmup_epochs")
    raw["train"]["warmup_epochs"] = 0.25
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_saved_config(path)
    assert cfg.train.lr_warmup_epochs == 0.25 and cfg.method.warmup_epochs == 5
