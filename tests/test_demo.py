"""``make demo`` (noisyclr.demo): both runs, the CPU line and the table, on a cut-down digits set."""

import pytest

from noisyclr import demo


@pytest.mark.parametrize("cpus", [1, 2])
def test_demo_prints_cpu_and_table(tmp_path, monkeypatch, capsys, cpus):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "available_cpus", lambda: cpus)  # 1: in this process, 2: two child processes
    overrides = ["dataset.train_limit=120", "dataset.test_limit=60", "train.epochs=2", "model.width=8"]
    monkeypatch.setitem(demo.DEMO_OVERRIDES, "PLReMix", [*demo.DEMO_OVERRIDES["PLReMix"], "method.warmup_epochs=1"])
    assert demo.main(overrides) == 0
    out = capsys.readouterr().out
    mode = "one run after the other" if cpus == 1 else "2 processes in parallel"
    assert f"CPU: {demo.cpu_model()}" in out and f"{mode}, 1 torch thread(s) each" in out
    lines = out.splitlines()
    ce = next(line for line in lines if line.startswith("CE "))
    plremix = next(line for line in lines if line.startswith("PLReMix "))
    assert ce.split()[1] == "2" and "-" in ce.split("%")[-1]  # epochs; no clean-set precision/recall for CE
    assert " / " in plremix
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    for _, preset in demo.DEMO_PRESETS:
        assert (runs[0] / preset / "summary.json").is_file()
        assert (runs[0] / preset / "checkpoint.pt").is_file()  # the last epoch is always saved


def test_demo_plan():
    assert demo.plan(1) == (False, 1)
    assert demo.plan(2) == (True, 1)
    assert demo.plan(8) == (True, 4)


def test_demo_rejects_a_bad_override_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demo.main(["train.epochz=3"]) == 2
    assert "train.epochz" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
