"""Least-squares readout refit (mdval.train.readout): optimality against the real training loss,
several elements, and the trainer option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import small_model

PREF_E, PREF_F = 3.0, 1.5


def emt_alloy_frames(n, seed=0):
    """Rattled 8-atom fcc Cu-Ni cells of varying composition and lattice constant, EMT labels."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mdval.data.frames import Frame

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.52 + 0.1 * rng.random(), cubic=True).repeat((1, 1, 2))
        symbols = np.where(rng.random(len(atoms)) < 0.3 + 0.4 * k / n, "Ni", "Cu")
        atoms.set_chemical_symbols(list(symbols))
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        out.append(
            Frame(
                symbols=atoms.get_chemical_symbols(),
                positions=atoms.positions,
                cell=atoms.cell.array,
                pbc=atoms.pbc,
                energy=atoms.get_potential_energy(),
                forces=atoms.get_forces(),
            )
        )
    return out


def loss_of(model, frames) -> torch.Tensor:
    """The training loss of mdval.train.loss over all frames at (PREF_E, PREF_F), as a tensor."""
    from mdval.data.batch import make_batch
    from mdval.train.loss import compute_loss
    from mdval.train.strategy import LossWeights

    batch = make_batch(frames, model.type_names, model.cutoff)
    weights = LossWeights(energy=PREF_E, forces=PREF_F, virial=0.0, slope_recovery=0.0, label_scale=1.0)
    loss, _ = compute_loss(model, batch, weights, create_graph=True)
    return loss


@pytest.mark.parametrize(
    "architecture,activation",
    [("deeppot_se", "tanh"), ("deeppot_se", "taafs:basis=chebyshev1,scope=layer"), ("behler_parrinello", "tanh")],
)
def test_refit_is_the_minimum_of_the_training_loss(architecture, activation):
    """At ridge 0 the refit readout is a stationary point of the *training loss* (computed by
    mdval.train.loss, not by the least-squares code): zero gradient in the output weights, zero
    finite-difference slope in each energy shift, and a loss no higher than before."""
    from mdval.train.readout import refit_readout

    frames = emt_alloy_frames(6)
    model = small_model(architecture, type_names=("Cu", "Ni"), activation=activation)
    weights = [net.output.weight for net in model.fitting.nets]
    loss0 = loss_of(model, frames)
    scale = max(float(g.abs().max()) for g in torch.autograd.grad(loss0, weights))
    before = float(loss0.detach())
    out = refit_readout(model, frames, model.type_names, pref_e=PREF_E, pref_f=PREF_F, ridge=0.0)
    after = loss_of(model, frames)
    assert float(after.detach()) < before
    assert out["train_loss_before"] == pytest.approx(before, rel=1e-9)
    assert out["train_loss_after"] == pytest.approx(float(after.detach()), rel=1e-9)
    for g in torch.autograd.grad(after, weights):
        assert float(g.abs().max()) < 1e-6 * scale, (float(g.abs().max()), scale)
    h = 1e-4
    for t in range(2):
        with torch.no_grad():
            model.fitting.energy_shift[t] += h
        up = float(loss_of(model, frames).detach())
        with torch.no_grad():
            model.fitting.energy_shift[t] -= 2 * h
        down = float(loss_of(model, frames).detach())
        with torch.no_grad():
            model.fitting.energy_shift[t] += h
        assert abs(up - down) / (2 * h) < 1e-6 * max(1.0, float(after.detach())), (t, up, down)


def test_ridge_keeps_the_weights_near_the_trained_ones():
    """A larger ridge moves the readout less and cannot lower the loss further than no ridge."""
    from mdval.train.readout import refit_readout

    frames = emt_alloy_frames(6, seed=1)
    changes, losses = [], []
    for ridge in (0.0, 1e-3, 1e1):
        model = small_model("deeppot_se", type_names=("Cu", "Ni"))
        out = refit_readout(model, frames, model.type_names, pref_e=PREF_E, pref_f=PREF_F, ridge=ridge)
        changes.append(out["weight_change"])
        losses.append(out["train_loss_after"])
    assert changes[0] > changes[1] > changes[2]
    assert losses[0] <= losses[1] <= losses[2]


def test_refit_refuses_bad_input():
    from mdval.train.readout import refit_readout

    model = small_model("deeppot_se", type_names=("Cu", "Ni"))
    frames = emt_alloy_frames(2)
    with pytest.raises(ValueError, match=r"readout refit: ridge must be >= 0 .*got -1"):
        refit_readout(model, frames, model.type_names, pref_e=1.0, pref_f=1.0, ridge=-1.0)
    frames[1].forces = None
    with pytest.raises(ValueError, match=r"readout refit needs force labels; frame\(s\) \[1\] have none"):
        refit_readout(model, frames, model.type_names, pref_e=1.0, pref_f=1.0)


def test_trainer_option_refits_and_reports(tmp_path):
    """training.readout_refit: the exported model carries the refit readout, metrics.json says
    what it did, and the training loss at the last prefactors went down."""
    from test_train import _cfg, _train, write_emt_data

    from mdval.deploy.model_file import load

    write_emt_data(tmp_path / "cu.xyz")
    cfg = _cfg(
        tmp_path,
        tmp_path,
        training={"epochs": 2, "readout_refit": True, "readout_ridge": 0.0},
        learning_rate={"stop_steps": 20},
    )
    trainer, summary = _train(cfg)
    refit = summary["readout_refit"]
    assert refit["train_loss_after"] < refit["train_loss_before"]
    assert set(refit["validation_before"]) == {"energy_mae_meV_per_atom", "force_mae_eV_per_A"}
    saved = json.loads((tmp_path / "runs" / "t" / "metrics.json").read_text())
    assert saved["readout_refit"]["ridge"] == 0.0
    exported = load(tmp_path / "runs" / "t" / "model.pt").module
    w_exported = dict(exported.named_parameters())["fitting.nets.0.output.weight"]
    assert torch.equal(w_exported, trainer.model.fitting.nets[0].output.weight.detach())
    best = torch.load(tmp_path / "runs" / "t" / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert not torch.equal(best["fitting.nets.0.output.weight"], w_exported)


def test_config_refuses_readout_refit_with_a_virial_term(tmp_path):
    from test_train import _cfg, write_emt_data

    write_emt_data(tmp_path / "cu.xyz")
    with pytest.raises(
        ValueError,
        match=r"training.readout_refit fits energies and forces only, but the loss "
        r"has a virial term",
    ):
        _cfg(tmp_path, tmp_path, training={"readout_refit": True}, loss={"limit_pref_v": 1.0})
    with pytest.raises(ValueError, match=r"training.readout_ridge must be a number >= 0 .*got -0.5"):
        _cfg(tmp_path, tmp_path, training={"readout_ridge": -0.5})
