"""report.html: written at the end of a run and by 'noisyclr report', self-contained, accessible, rendered by a real
browser (Debian's headless Chromium: a non-blank screenshot, no console message, every image loaded)."""

import base64
import importlib.util
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from noisyclr import api, report
from noisyclr.cli import main
from noisyclr.config import load_config
from noisyclr.engine import run_training

from tiny_runs import tiny_run as _tiny_run


def tiny_run(**kwargs) -> list[str]:
    """The shared tiny run with the end-of-run report on (tiny_runs turns it off for the other tests)."""
    return _tiny_run(**kwargs) + ["log.report=true"]

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

IMG = re.compile(r"<img\b([^>]*)>", re.S)


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\b{name}="([^"]*)"', tag)
    return None if m is None else m.group(1)


@pytest.fixture(scope="module")
def plremix_run(tmp_path_factory):
    """A finished PLReMix run on 128 synthetic images (2 epochs: one warm-up, one semi-supervised)."""
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = load_config("plremix-digits-sym50", tiny_run() + ["train.epochs=2", "method.warmup_epochs=1",
                                                            "log.progress=off", "train.threads=1"])
    run_training(cfg, out)
    return out


def _images(page: str) -> list[str]:
    return [m.group(1) for m in IMG.finditer(page)]


def _check_self_contained(page: str) -> None:
    assert "<script" not in page.lower() and "<link" not in page.lower() and "<iframe" not in page.lower()
    assert not re.search(r"""(?:src|href|srcset|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", page, re.I) and "@import" not in page
    for tag in _images(page):
        alt, src = _attr(tag, "alt"), _attr(tag, "src")
        assert alt and alt.strip(), tag[:120]
        assert src and src.startswith("data:image/png;base64,"), tag[:120]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as img:
            img.load()
            assert img.size[0] > 0 and img.size[1] > 0


def test_report_is_written_at_the_end_of_a_run_and_is_self_contained(plremix_run):
    page = (plremix_run / "report.html").read_text()
    _check_self_contained(page)
    assert '<html lang="en">' in page and "<h1>" in page and page.count("<figcaption>") >= len(_images(page))
    assert "plremix on synthetic" in page
    # the 24 most likely wrong labels with a thumbnail each, in the order of the label_issues.csv the run wrote
    # (noisyclr detect at the end of the run), given and suggested labels
    assert page.count('<li><figure><img src="data:image/png') == 24
    assert "ranked by <code>noisyclr detect</code>" in page and page.count("suggested: <strong>") == 24
    first = int((plremix_run / "label_issues.csv").read_text().splitlines()[1].split(",")[0])
    assert f"<strong>#1</strong> · sample {first}<" in page
    for section in ("training", "issues", "summary", "config"):
        assert f'id="{section}"' in page
    assert "<details><summary>config.yaml" in page and "name: plremix" in page
    if HAVE_MATPLOTLIB:  # accuracy, division, training, histogram, 2-D scatter, transition matrices
        for fig in ("fig-accuracy", "fig-division", "fig-training", "fig-histogram", "fig-scatter", "fig-transition"):
            assert f'<figure id="{fig}"><img' in page, fig
    else:
        assert "The figures need matplotlib" in page


def test_cli_and_api_regenerate_the_report(plremix_run, tmp_path, capsys):
    out = tmp_path / "again.html"
    assert main(["report", str(plremix_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    page = out.read_text()
    _check_self_contained(page)
    assert page.count('<li><figure><img src="data:image/png') == 24  # the data prepared again from the config
    if HAVE_MATPLOTLIB:
        assert 'id="fig-scatter"' in page  # the 2-D division recomputed from the checkpoint
    assert api.report(plremix_run, tmp_path / "api.html") == tmp_path / "api.html"


def test_label_issues_csv_is_preferred_and_its_transition_matrix(plremix_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(plremix_run, run)
    labels = np.loadtxt(run / "train_labels.csv", delimiter=",", skiprows=1, dtype=np.int64)
    order = np.arange(len(labels))[::-1]  # a ranking unlike labels.csv's: the last sample first
    lines = ["index,given_label,p_wrong,suggested_label,suggested_confidence,is_issue,true_label"]
    for rank, i in enumerate(order):
        flagged = rank < 10
        lines.append(f"{i},{labels[i, 1]},{1 - rank / len(order):.4f},{(labels[i, 1] + 1) % 4},0.9,"
                     f"{int(flagged)},{labels[i, 2]}")
    (run / "label_issues.csv").write_text("\n".join(lines) + "\n")
    page = report.write_report(run, tmp_path / "r.html", epochs=(2, None)).read_text()
    assert "from <code>label_issues.csv</code>" in page and "10 of 128 are flagged" in page
    assert f"<strong>#1</strong> · sample {order[0]}<" in page and f"<strong>#2</strong> · sample {order[1]}<" in page
    assert "2 epochs logged" not in page and "1 epoch logged" in page  # epochs=(2, None) keeps epoch 2 only


def test_transition_matrices_on_a_constructed_case():
    # given 0 0 0 0 1 1; two flagged: sample 1 (suggested 1) and sample 4 (suggested 0)
    issues = report._Issues("label_issues.csv", index=np.arange(6), given=np.array([0, 0, 0, 0, 1, 1]),
                            p_wrong=np.zeros(6), suggested=np.array([0, 1, 1, 0, 0, 0]), confidence=None,
                            is_issue=np.array([False, True, False, False, True, False]),
                            true=np.array([0, 1, 0, 1, 0, -1]))
    est, true = report.transition_matrices(issues, 2)
    np.testing.assert_allclose(est, [[0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(true, [[0.5, 0.5], [1.0, 0.0]])  # the OOD row (true -1) is left out


def test_log_report_off_and_a_failed_render_never_fails_the_run(tmp_path, capsys, monkeypatch):
    base = tiny_run(train_size=64, test_size=16) + ["train.epochs=1", "log.progress=off", "train.threads=1"]
    run_training(load_config("standard-ce-digits-sym50", base + ["log.report=false"]), tmp_path / "off")
    assert (tmp_path / "off" / "summary.json").is_file() and not (tmp_path / "off" / "report.html").exists()

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "render", boom)
    capsys.readouterr()
    result = run_training(load_config("standard-ce-digits-sym50", base), tmp_path / "failed")
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"noisyclr: warning: report.html was not written (RuntimeError: boom); write it with "
                   f"'noisyclr report {tmp_path / 'failed'}'"]
    assert result.summary["epochs"] == 1 and not (tmp_path / "failed" / "report.html").exists()


def test_cli_errors_are_one_line(tmp_path, capsys, plremix_run):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    (tmp_path / "cfgonly").mkdir()
    shutil.copy(plremix_run / "config.yaml", tmp_path / "cfgonly" / "config.yaml")
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (["report", str(tmp_path / "missing")], "does not exist"),
        (["report", str(tmp_path / "empty")], "is not a noisyclr run folder"),
        (["report", str(tmp_path / "notes")], "is not a noisyclr run folder"),
        (["report", str(tmp_path / "cfgonly")], "holds a config.yaml but no run"),
        (["report", str(tmp_path / "file.txt")], "is a file, not a run folder"),
        (["report", str(plremix_run), "--out", str(tmp_path / "no" / "r.html")], "does not exist"),
        (["report", str(plremix_run), "--out", str(tmp_path)], "is a folder"),
        (["report"], "run_dir"),
    ]
    for argv, needle in cases:
        code = main(argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and err[0].startswith("noisyclr: error: ") and needle in err[0], (argv, err)


# ------------------------------------------------------------------------------------------------------ browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(binary, profile, *args):
    cmd = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


# sets the title to "<images loaded>/<images>" once the page has loaded (injected into a copy; the report has none)
COUNT_IMAGES = ("<script>window.addEventListener('load', function () { var all = Array.prototype.slice.call("
                "document.images); document.title = 'loaded ' + all.filter(function (i) { return i.complete && "
                "i.naturalWidth > 0; }).length + '/' + all.length; });</script>")


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_renders_in_headless_chromium(plremix_run, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    page = (plremix_run / "report.html").read_text()
    n_images = len(_images(page))
    shot = tmp_path / "shot.png"
    done = _browser(binary, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1280,2000",
                    (plremix_run / "report.html").as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.02  # text, figures and thumbnails, not a blank page

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", COUNT_IMAGES + "</body>"))
    done = _browser(binary, tmp_path / "p2", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                    "--dump-dom", probe.as_uri())
    title = re.search(r"<title>([^<]*)</title>", done.stdout)
    assert title is not None, done.stderr[-2000:]
    assert title.group(1) == f"loaded {n_images}/{n_images}" and n_images >= 24 + 6 * HAVE_MATPLOTLIB
    assert _console_lines(done.stderr) == []

    # the console check sees what a page logs (a control page with an error and a broken image)
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><head><title>c</title></head><body><img src="data:image/png;base64,'
                       'AAAA" alt="broken"><script>console.error("control error");</script>' + COUNT_IMAGES +
                       "</body></html>")
    done = _browser(binary, tmp_path / "p3", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                    "--dump-dom", control.as_uri())
    assert any("control error" in line for line in _console_lines(done.stderr)), done.stderr[-2000:]
    assert "<title>loaded 0/1</title>" in done.stdout


def test_without_label_issues_the_page_ranks_labels_csv(plremix_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(plremix_run, run)
    (run / "label_issues.csv").unlink()
    page = api.report(run).read_text()
    assert "ranked by ascending clean probability" in page
    header = (run / "labels.csv").read_text().splitlines()[0].split(",")
    cols = [header.index("index"), header.index("clean_prob"), header.index("given_prob")]
    ranked = np.loadtxt(run / "labels.csv", delimiter=",", skiprows=1, usecols=cols, ndmin=2)
    first = int(ranked[np.lexsort((ranked[:, 0], ranked[:, 2], ranked[:, 1]))][0, 0])  # clean_prob, given_prob, index
    assert f"<strong>#1</strong> · sample {first}<" in page
