"""Exact parameter counts (the paper's published numbers), the LR-by-width rule and ``params``."""

from __future__ import annotations

import pytest

from lightning_dielectric.cli import main as cli_main
from lightning_dielectric.models import FAMILIES, build_model, count_parameters, num_parameters
from lightning_dielectric.training.lr_rule import lr_for_width
from lightning_dielectric.training.params import config_parameter_count

WIDTHS = (16, 32, 64, 128, 256)
PAPER_COUNTS = {
    "2b-cgc": (278_627, 585_507, 1_296_035, 3_104_163, 8_268_707),
    "2b-tc": (278_275, 583_779, 1_288_483, 3_072_675, 8_140_195),
    "3b": (291_827, 635_459, 1_490_147, 3_869_219, 11_306_147),
}


@pytest.mark.parametrize("family", list(PAPER_COUNTS))
def test_parameter_counts_match_paper(family):
    assert [count_parameters(family, w) for w in WIDTHS] == list(PAPER_COUNTS[family])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_meta_count_equals_materialised_model(family):
    model = build_model(family, 32)
    assert num_parameters(model) == count_parameters(family, 32)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_magpie_count_closed_form():
    # trunk MLP 132 → w → w → w (+ batch norms) and the shared heads: 24w² + 16178w + 4003
    assert [count_parameters("magpie", w) for w in WIDTHS] == [24 * w * w + 16178 * w + 4003 for w in WIDTHS]


def test_lr_for_width():
    assert lr_for_width("2b-cgc", 64, 1e-3) == 1e-3
    assert lr_for_width("magpie", 64, 1e-3) == 1e-3
    assert lr_for_width("2b-tc", 256, 6e-4) == pytest.approx(6e-4)
    assert lr_for_width("2b-tc", 64, 6e-4) == pytest.approx(6e-4 * 8_140_195 / 1_288_483)
    assert lr_for_width("3b", 16, 4e-4) == pytest.approx(4e-4 * 11_306_147 / 291_827)
    with pytest.raises(ValueError, match="unknown model family"):
        lr_for_width("4b", 64, 1e-3)


def write_config(path, body: str):
    path.write_text(body)
    return path


def test_params_command(tmp_path, capsys):
    cfg = write_config(
        tmp_path / "tc.yaml",
        "model:\n  lr: 6.0e-4\n  model:\n    class_path: lightning_dielectric.models.OptiMetal2B\n"
        "    init_args:\n      width: 256\n      conv: tc\n",
    )
    assert cli_main(["params", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.strip() == "8140195"
    assert cli_main(["params", "--config", str(cfg), "--width", "64"]) == 0
    assert capsys.readouterr().out.strip() == "1288483"
    nested = write_config(
        tmp_path / "3b.yaml",
        "model:\n  class_path: lightning_dielectric.training.DielectricModule\n  init_args:\n    model:\n"
        "      class_path: lightning_dielectric.models.OptiMetal3B\n",
    )
    assert config_parameter_count(nested, 32) == 635_459
    shorthand = write_config(tmp_path / "m.yaml", "model:\n  model: lightning_dielectric.models.MagpieBaseline\n")
    assert config_parameter_count(shorthand) == count_parameters("magpie", 256)


@pytest.mark.parametrize(
    "body, message",
    [
        ("trainer: {}\n", "missing key 'model'"),
        ("model:\n  lr: 1.0\n", "model.model.class_path"),
        ("model:\n  model:\n    class_path: lightning_dielectric.models.Nope\n", "cannot be imported"),
        ("model:\n  model:\n    class_path: lightning_dielectric.models.OptiMetal2B\n    init_args: {depth: 3}\n",
         "init_args do not fit"),
    ],
)
def test_params_bad_config(tmp_path, capsys, body, message):
    cfg = write_config(tmp_path / "bad.yaml", body)
    assert cli_main(["params", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(cfg) in err and len(err.strip().splitlines()) == 1


def test_params_missing_file(tmp_path, capsys):
    assert cli_main(["params", "--config", str(tmp_path / "none.yaml")]) == 1
    assert "none.yaml" in capsys.readouterr().err


def test_lr_for_width_anchored_at_another_base_width():
    n = {w: count_parameters("2b-tc", w) for w in (16, 32, 256)}
    assert lr_for_width("2b-tc", 16, 1e-3, base_width=32) == pytest.approx(1e-3 * n[32] / n[16])
    # the same rate as the paper's rule anchored at 256 and rescaled to the base config's rate
    lr_256 = 1e-3 * n[32] / n[256]
    assert lr_for_width("2b-tc", 16, 1e-3, base_width=32) == pytest.approx(lr_for_width("2b-tc", 16, lr_256))
    assert lr_for_width("2b-cgc", 16, 1e-3, base_width=32) == 1e-3
