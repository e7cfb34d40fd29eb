import pytest
import yaml

from noisyclr.config import build_config, config_to_dict, list_presets, load_config, parse_overrides
from noisyclr.errors import UserError


def test_preset_loads_with_inheritance_and_overrides():
    cfg = load_config("standard-gce-digits-sym50", ["train.epochs=3", "noise.rate=0.2", "train.milestones=[1,2]"])
    assert cfg.method.name == "standard" and cfg.method.loss == "gce" and cfg.method.q == 0.7
    assert cfg.noise.kind == "sym" and cfg.noise.rate == 0.2  # inherited kind, overridden rate
    assert cfg.train.epochs == 3 and cfg.train.milestones == [1, 2]
    assert cfg.augment.padding == 1


def test_int_accepted_for_float_and_roundtrip(tmp_path):
    cfg = load_config("standard-ce-digits-sym50", ["train.lr=1"])
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    again = load_config(str(path))
    assert config_to_dict(again) == config_to_dict(cfg)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.lrr=0.1", "did you mean 'train.lr'"),
        ("trian.lr=0.1", "did you mean 'train'"),
        ("method.loss_name=ce", "unknown config key 'method.loss_name'"),
        ("train.epochs=abc", "'train.epochs' must be int"),
        ("noise.rate=1.5", "noise.rate must be in [0, 1]"),
        ("noise.rate=-0.1", "noise.rate must be in [0, 1]"),
        ("noise.kind=symm", "did you mean 'sym'"),
        ("method.loss=gcee", "did you mean 'gce'"),
        ("method.name=standrd", "did you mean 'standard'"),
        ("train.schedule=multistep", "needs train.milestones"),
        ("train.lr", "not of the form"),
    ],
)
def test_bad_config_is_one_clear_line(override, needle):
    with pytest.raises(UserError) as info:
        load_config("standard-ce-digits-sym50", [override])
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_unknown_preset_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'standard-ce-digits-sym50'"):
        load_config("standard-ce-digits-sym5")


def test_every_shipped_preset_validates():
    names = [name for name, _ in list_presets()]
    assert "standard-ce-digits-sym50" in names
    for name, desc in list_presets():
        assert desc, f"preset {name} has no description"
        load_config(name)


def test_parse_overrides_nested_and_typed():
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]", "e=null"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2], "e": None}


def test_build_config_rejects_unknown_section():
    with pytest.raises(UserError, match="did you mean 'model'"):
        build_config({"modle": {}})
