"""The training section of the compare report (mdval.report.training_figures): which blocks it
writes for models with and without trainable activations and training logs."""

from __future__ import annotations

import json

import torch

from mdval.deploy.model_file import export
from mdval.nn import coefficient_record
from mdval.report.training_figures import training_blocks, training_log

from conftest import small_model

NO_ACTIVATION = "No model with a trainable activation (TAAFS or LAAF) in this workflow."
NO_LOG = "No training log found next to the models (NAME.log.jsonl) or in their run folders."


def test_a_fixed_activation_and_no_log_say_so_in_words(tmp_path):
    path = export(small_model("deeppot_se", ["Cu"], "tanh"), tmp_path / "plain.pt", {"optimizer": "none"})
    assert training_log(str(path)) is None
    blocks = training_blocks([str(path)], tmp_path / "figures")
    assert blocks == [("h", "Learned activations"), ("p", NO_ACTIVATION), ("h", "Training curves"), ("p", NO_LOG)]


def test_a_logged_taafs_model_gets_its_curves_their_evolution_and_its_validation_curve(tmp_path):
    model = small_model("deeppot_se", ["Cu"], "taafs:basis=chebyshev1,scope=layer", seed=3)
    path = export(model, tmp_path / "cheb.pt", {"optimizer": "none"})
    lines = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("coeffs"):
                    p.mul_(1.1)
        lines.append(
            {
                "epoch": epoch,
                "time_s": 10.0 * epoch,
                "activation_coefficients": coefficient_record(model),
                "val": {"energy_rmse_meV_per_atom": 5.0 / epoch, "force_rmse_eV_per_A": 0.2 / epoch},
            }
        )
    lines.append({"epoch": 4, "time_s": 40.0})  # an epoch without validation adds no point
    log = tmp_path / "cheb.log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert training_log(str(path)) == log
    fig_dir = tmp_path / "figures"
    blocks = training_blocks([str(path)], fig_dir)
    assert [b[0] for b in blocks] == ["h", "img", "img", "h", "img"]
    assert [b[1] for b in blocks if b[0] == "img"] == [
        str(fig_dir / "activation_cheb.png"),
        str(fig_dir / "activation_evolution_cheb.png"),
        str(fig_dir / "training.png"),
    ]
    assert all(
        (fig_dir / name).stat().st_size > 0
        for name in ("activation_cheb.png", "activation_evolution_cheb.png", "training.png")
    )
