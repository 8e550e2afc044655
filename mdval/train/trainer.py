"""The training loop: data, statistics, optimizer steps, validation, logs, checkpoints, export.

Run folder ``<run.dir>/<run.name>/``::

    config.toml           the resolved config (overrides applied)
    splits.json           train/validation/test frame indices (seeded; mdval.train.run_data)
    log.jsonl             one line per epoch: step, wall time (s), lr, train/val RMSE (energy
                          meV/atom, force eV/Å), loss prefactors and the TAAFS/LAAF coefficients
                          ({layer name: {parameter name: values}}, mdval.nn.introspect), for
                          plotting the activations' evolution
    checkpoints/last.pt   every epoch and every ``checkpoint_every`` steps (atomic)
    checkpoints/best.pt   best validation score so far
    model.pt              the exported model (ABI v1) from the best checkpoint, with metadata
    metrics.json          test (and validation) errors of model.pt, data description, timing

Best score: sqrt(p_e,limit · N̄ · RMSE_e² + p_f,limit · RMSE_f²) on the validation set (RMSE_e in
eV/atom, RMSE_f in eV/Å, N̄ the mean atom count of the validation frames), i.e. the loss at the
end of the prefactor schedule (its energy term is DeePMD's ΔE²/N, see mdval.train.loss; exact
when the frames have the same size).

Exact resume: the batch order of epoch k is ``default_rng((seed, k)).permutation``, the step
count, the optimizer state, the lr plan, the torch RNG state and the position inside the epoch
are in the checkpoint, so a resumed run makes the same updates as an uninterrupted one. So that
it stays the same run, a resume is refused when the config changes anything but the keys in
``mdval.train.config.RESUME_MAY_CHANGE`` (epochs, time budget, ...), or the data files' content
(sha256); a damaged ``last.pt`` falls back to ``best.pt`` with a warning.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdval import fileio
from mdval.data.batch import make_batch, precompute_neighbors
from mdval.data.neighbors import NeighborCache
from mdval.nn.introspect import coefficient_record
from mdval.train.checkpoint import load_checkpoint, load_for_resume, save_checkpoint
from mdval.train.config import changed_keys, resume_changes, resume_refusal, to_toml
from mdval.train.loss import LRSchedule, loss_weights
from mdval.train.optimizers import make_strategy
from mdval.train.run_data import check_same_data, load_run_data
from mdval.train.statistics import (
    fit_energy_shift,
    network_energies,
    set_descriptor_statistics,
    set_energy_shift,
)

#: Steps timed before the lr plan is fixed from the time budget (``schedule_by_time``).
CALIBRATION_STEPS: int = 10
#: Steps after that first plan before it is re-made once, at an epoch end, from the measured rate
#: (the first steps run slower, and validation, shift refit and checkpoints take time too).
REPLAN_STEPS: int = 50


def _mae_pair(m: dict) -> dict:
    """The energy and force MAE of an error_metrics dict (rounded, for logs)."""
    return {k: round(m[k], 4) for k in ("energy_mae_meV_per_atom", "force_mae_eV_per_A") if k in m}


class Trainer:
    """Train the model of a checked config (:func:`mdval.train.config.load_config`)."""

    def __init__(self, cfg: dict, *, resume: bool = False, log=print):
        self.cfg = cfg
        self.resume = resume
        self.log = log
        run = cfg["run"]
        self.name = run["name"] or Path(cfg["_path"]).stem
        self.run_dir = Path(run["dir"]).expanduser() / self.name
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.seed = int(run["seed"])

    # ------------------------------------------------------------------ data
    def _load_data(self) -> None:
        data = load_run_data(self.cfg, self.run_dir, resume=self.resume, log=self.log, progress=self.progress)
        self.train_frames, self.val_frames, self.test_frames = data.train, data.validation, data.test
        self.training_data = data.description

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        from mdval.nn import build_model

        tr = self.cfg["training"]
        self.progress = bool(tr["progress"])
        state = None
        if self.resume:
            state = load_for_resume(self.ckpt_dir, self.log)
        elif any((self.ckpt_dir / name).exists() for name in ("last.pt", "best.pt")):
            raise ValueError(
                f"{self.run_dir} already holds a run; continue it with --resume, or "
                "choose another run.name (or delete the folder)"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model = build_model({"seed": self.seed, **self.cfg["model"]})
        if state is not None:
            self._check_resume_config(state)
        self._load_data()
        if state is not None:
            check_same_data(self.run_dir, state.get("training_data", {}), self.training_data)
        self.cache = NeighborCache()
        self.log(
            f"neighbour lists for {len(self.train_frames) + len(self.val_frames)} frames (cutoff {self.model.cutoff} Å)"
        )
        precompute_neighbors(self.train_frames + self.val_frames, self.model.cutoff, self.cache)
        self.batch_size = int(tr["batch_size"])
        self.steps_per_epoch = math.ceil(len(self.train_frames) / self.batch_size)
        lr = self.cfg["learning_rate"]
        planned = int(lr["stop_steps"]) or int(tr["epochs"]) * self.steps_per_epoch
        self.step = self.epoch = self.batch_in_epoch = 0
        self.elapsed_s = 0.0
        self.best_metric, self.best_epoch = math.inf, -1
        if state is not None:
            self.model.load_state_dict(state["model"])
            planned = int(state["stop_steps"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_in_epoch = int(state["batch_in_epoch"])
            self.elapsed_s = float(state["elapsed_s"])
            self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
            torch.set_rng_state(state["rng_torch"])
        else:
            stats = set_descriptor_statistics(
                self.model,
                self.train_frames,
                neighbor_cache=self.cache,
                n_frames=int(self.cfg["data"]["stat_frames"]),
                seed=self.seed,
            )
            baseline = network_energies(self.model, self.train_frames, neighbor_cache=self.cache)
            shift = fit_energy_shift(self.train_frames, self.model.type_names, baseline)
            set_energy_shift(self.model, shift)
            self.log(
                "energy shift (eV/atom, over the untrained network): "
                + ", ".join(f"{t} {v:.6f}" for t, v in zip(self.model.type_names, shift))
            )
            self.stats = stats
            torch.manual_seed(self.seed)
            (self.run_dir / "config.toml").write_text(to_toml(self.cfg))
        self.calibrated = state is not None or not (tr["schedule_by_time"] and tr["max_time_min"] > 0)
        self.schedule = LRSchedule(float(lr["start_lr"]), float(lr["stop_lr"]), max(planned, 1), int(lr["decay_steps"]))
        opt = dict(self.cfg["optimizer"])
        self.optimizer_name = str(opt.get("name", "adam")).lower()
        self.strategy = make_strategy(self.optimizer_name, self.model, opt, self.schedule)
        if state is not None:
            self.strategy.load_state_dict(state["strategy"])
            self.log(f"resumed {self.run_dir} at epoch {self.epoch}, step {self.step}")

    def _check_resume_config(self, state: dict) -> None:
        """Refuse to resume when the config changed what the checkpoint means: the model (its
        built config, defaults filled in), or a key that RESUME_MAY_CHANGE does not list."""
        from mdval.nn import build_model

        stored_cfg = state.get("config", {})
        changes = resume_changes(stored_cfg, self.cfg)
        model_changes = changed_keys("model", build_model(state["model_config"]).config(), self.model.config())
        # Name the keys the user wrote (activation, not the embedding_activation it implies),
        # unless only implied ones changed (model.seed follows run.seed, named above).
        written = {f"model.{key}" for key in (*stored_cfg.get("model", {}), *self.cfg["model"])}
        named = [change for change in model_changes if change[0] in written]
        changes += named if named or changes else model_changes
        if changes:
            raise ValueError(resume_refusal(self.run_dir, changes))

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        return {
            "model_config": self.model.config(),
            "model": self.model.state_dict(),
            "strategy": self.strategy.state_dict(),
            "optimizer_name": self.optimizer_name,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "stop_steps": self.schedule.stop_steps,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "elapsed_s": self.elapsed_s,
            "rng_torch": torch.get_rng_state(),
            "training_data": self.training_data,
            "config": {k: v for k, v in self.cfg.items() if not k.startswith("_")},
        }

    def _checkpoint(self, best: bool = False) -> None:
        state = self._state()
        save_checkpoint(self.ckpt_dir / "last.pt", state)
        if best:
            save_checkpoint(self.ckpt_dir / "best.pt", state)

    # ------------------------------------------------------------------ validation
    def _refit_energy_shift(self) -> None:
        """Least-squares per-element energy shifts on the current network's residuals.

        Uses the same deterministic subset of up to ``stat_frames`` training frames every epoch
        (energies only, no forces), so it is cheap and an interrupted run resumes exactly.
        """
        frames = self.train_frames
        n = int(self.cfg["data"]["stat_frames"])
        if 0 < n < len(frames):
            pick = np.sort(np.random.default_rng(self.seed).choice(len(frames), n, replace=False))
            frames = [frames[i] for i in pick]
        baseline = network_energies(self.model, frames, neighbor_cache=self.cache)
        set_energy_shift(self.model, fit_energy_shift(frames, self.model.type_names, baseline))

    def _refit_readout(self) -> dict:
        """Least-squares readout at the loss prefactors of the last step (mdval.train.readout)."""
        from mdval.train.readout import refit_readout

        w = loss_weights(self.cfg["loss"], self.schedule, self.step)
        ridge = float(self.cfg["training"]["readout_ridge"])
        before = _mae_pair(self._evaluate(self.val_frames)) if self.val_frames else {}
        self.log(
            f"readout refit on {len(self.train_frames)} training frames (p_e {w.energy:.3g}, "
            f"p_f {w.forces:.3g}, ridge {ridge:g}) ..."
        )
        t = time.perf_counter()
        out = refit_readout(
            self.model,
            self.train_frames,
            self.model.type_names,
            pref_e=w.energy,
            pref_f=w.forces,
            ridge=ridge,
            neighbor_cache=self.cache,
        )
        out["seconds"] = round(time.perf_counter() - t, 1)
        out["validation_before"] = before
        self.log(
            f"readout refit: training loss {out['train_loss_before']:.4g} -> {out['train_loss_after']:.4g}, "
            f"weights moved {out['weight_change']:.2f}x their norm, {out['seconds']} s"
        )
        return out

    def _evaluate(self, frames) -> dict:
        from mdval.deploy.evaluate import error_metrics, predict_frames

        pred = predict_frames(
            self.model,
            frames,
            self.model.type_names,
            self.model.cutoff,
            batch_size=int(self.cfg["training"]["val_batch_size"]),
            neighbor_cache=self.cache,
        )
        return error_metrics(pred)

    def _score(self, m: dict) -> float:
        loss = self.cfg["loss"]
        e = m["energy_rmse_meV_per_atom"] * 1e-3
        n_mean = m["n_atoms"] / max(m["n_frames"], 1)
        f = m.get("force_rmse_eV_per_A", 0.0)
        return math.sqrt(loss["limit_pref_e"] * n_mean * e * e + loss["limit_pref_f"] * f * f)

    # ------------------------------------------------------------------ loop
    def _calibrate(self, t_train_start: float) -> None:
        """Fix the lr plan so that stop_lr is reached at the end of the time budget."""
        budget_s = 60.0 * float(self.cfg["training"]["max_time_min"])
        per_step = (time.perf_counter() - t_train_start) / max(self.step - self._step0, 1)
        steps = int(0.9 * budget_s / per_step)  # leave time for validation
        self._set_stop_steps(steps)
        self.calibrated = True
        self._replan_from = (time.perf_counter(), self.step)
        self.log(f"lr plan from the time budget: {steps} steps ({per_step * 1e3:.0f} ms/step)")

    def _replan(self, t0: float, budget_s: float) -> None:
        """Re-make the lr plan once, at an epoch end, from the rate since the first plan.

        The first steps are slow (allocation, warm-up) and an epoch also validates, refits the
        energy shift and checkpoints, so the first plan can be off by tens of percent either way
        (stop_lr reached at 80 % of the budget, or never). The rate measured over the steps since
        then, epoch overheads included, fixes that; the lr moves by a few percent at most.
        """
        t_from, step_from = self._replan_from
        per_step = (time.perf_counter() - t_from) / max(self.step - step_from, 1)
        remaining_s = budget_s - (self._elapsed0 + time.perf_counter() - t0)
        steps = self.step + int(0.98 * max(remaining_s, 0.0) / per_step)
        self._set_stop_steps(steps)
        self._replan_from = None
        self.log(
            f"lr plan re-made after epoch {self.epoch}: {self.schedule.stop_steps} steps "
            f"({per_step * 1e3:.1f} ms/step with validation)"
        )

    def _set_stop_steps(self, steps: int) -> None:
        steps = max(min(steps, int(self.cfg["training"]["epochs"]) * self.steps_per_epoch), self.step + 1)
        self.schedule = LRSchedule(self.schedule.start_lr, self.schedule.stop_lr, steps, self.schedule.decay_steps)
        self.strategy.schedule = self.schedule

    def _epoch(self, t0: float, budget_s: float) -> tuple[dict, bool]:
        """One epoch (or its remainder); returns (train metrics, stopped by the time budget)."""
        tr = self.cfg["training"]
        order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.train_frames))
        sums = {"loss": 0.0, "se_e": 0.0, "se_f": 0.0, "n": 0}
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.batch_in_epoch,
                desc=f"epoch {self.epoch + 1}/{tr['epochs']}",
                unit="batch",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
        stopped = False
        every = int(tr["checkpoint_every"])
        try:
            while self.batch_in_epoch < self.steps_per_epoch:
                b = self.batch_in_epoch
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                batch = make_batch(
                    [self.train_frames[i] for i in idx], self.model.type_names, self.model.cutoff, self.cache
                )
                weights = loss_weights(self.cfg["loss"], self.schedule, self.step)
                out = self.strategy.step(self.model, batch, weights, self.step)
                if not math.isfinite(out.get("loss", 0.0)):
                    raise ValueError(
                        f"the loss became {out.get('loss')} at step {self.step}; lower "
                        "learning_rate.start_lr or set optimizer.clip_grad_norm"
                    )
                self.step += 1
                self.batch_in_epoch += 1
                self.elapsed_s = self._elapsed0 + time.perf_counter() - t0
                sums["loss"] += out.get("loss", 0.0)
                sums["se_e"] += out.get("rmse_e", out.get("energy_mae", 0.0)) ** 2
                sums["se_f"] += out.get("rmse_f", out.get("force_mae", 0.0)) ** 2
                sums["n"] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{out.get('loss', 0):.3g}",
                        e_meV=f"{1e3 * math.sqrt(sums['se_e'] / sums['n']):.3g}",
                        f=f"{math.sqrt(sums['se_f'] / sums['n']):.3g}",
                        lr=f"{out.get('lr', float('nan')):.2g}",
                    )
                if not self.calibrated and self.step - self._step0 >= CALIBRATION_STEPS:
                    self._calibrate(t0)
                if every and self.step % every == 0 and self.batch_in_epoch < self.steps_per_epoch:
                    self._checkpoint()
                if budget_s and self.elapsed_s >= budget_s:
                    stopped = True
                    break
        finally:
            if bar is not None:
                bar.close()
        n = max(sums["n"], 1)
        train = {
            "loss": sums["loss"] / n,
            "rmse_e_meV_per_atom": 1e3 * math.sqrt(sums["se_e"] / n),
            "rmse_f_eV_per_A": math.sqrt(sums["se_f"] / n),
        }
        return train, stopped

    def _append_log(self, record: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _trim_log(self) -> None:
        """On resume, drop log lines of epochs after the checkpoint (they will be redone)."""
        path = self.run_dir / "log.jsonl"
        if not path.exists():
            return
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= self.epoch]
        path.write_text("".join(ln + "\n" for ln in keep))

    def train(self) -> dict:
        """Run (or continue) training, then export; returns the final metrics dict."""
        self.progress = bool(self.cfg["training"]["progress"])
        self._setup()
        tr = self.cfg["training"]
        budget_s = 60.0 * float(tr["max_time_min"])
        patience = int(tr["early_stopping_patience"])
        if self.resume:
            self._trim_log()
        self._elapsed0, self._step0 = self.elapsed_s, self.step
        self._replan_from = None
        t0 = time.perf_counter()
        reason = "epochs"
        while self.epoch < int(tr["epochs"]):
            if budget_s and self.elapsed_s >= budget_s:
                reason = "time budget"
                break
            train, stopped = self._epoch(t0, budget_s)
            if stopped and self.batch_in_epoch < self.steps_per_epoch:
                self._checkpoint()
                reason = "time budget"
                break
            self.epoch += 1
            self.batch_in_epoch = 0
            if tr["refit_energy_shift"]:
                self._refit_energy_shift()
            val = self._evaluate(self.val_frames) if self.val_frames else {}
            if self._replan_from is not None and self.step - self._replan_from[1] >= REPLAN_STEPS:
                self._replan(t0, budget_s)
            score = self._score(val) if val else train["loss"]
            best = score < self.best_metric
            if best:
                self.best_metric, self.best_epoch = score, self.epoch
            w = loss_weights(self.cfg["loss"], self.schedule, self.step)
            record = {
                "epoch": self.epoch,
                "step": self.step,
                "time_s": round(self.elapsed_s, 3),
                "lr": self.schedule(self.step),
                "pref_e": w.energy,
                "pref_f": w.forces,
                "pref_v": w.virial,
                "train": train,
                "val": val,
                "val_score": score,
                "activation_coefficients": coefficient_record(self.model),
            }
            self._append_log(record)
            self._checkpoint(best=best)
            vtxt = (
                f"val E {val['energy_rmse_meV_per_atom']:.3g} meV/atom, F "
                f"{val.get('force_rmse_eV_per_A', float('nan')):.4g} eV/Å"
                if val
                else "no val"
            )
            self.log(
                f"epoch {self.epoch}: step {self.step}, {self.elapsed_s:.0f} s, lr "
                f"{record['lr']:.2e}, train loss {train['loss']:.4g}; {vtxt}{' *' if best else ''}"
            )
            if patience and self.epoch - self.best_epoch >= patience:
                reason = "early stopping"
                break
            if stopped:
                reason = "time budget"
                break
        return self.finish(reason)

    # ------------------------------------------------------------------ export
    def finish(self, reason: str) -> dict:
        """Load the best weights, evaluate on the test set, export model.pt, write metrics.json."""
        from mdval.deploy.model_file import export

        best = self.ckpt_dir / "best.pt"
        if best.exists():
            try:
                self.model.load_state_dict(load_checkpoint(best)["model"])
            except ValueError as error:  # damaged on disk: export what training reached
                self.log(
                    f"warning: {error}; exporting the weights of epoch {self.epoch}, step "
                    f"{self.step} instead of the best ones"
                )
        refit = self._refit_readout() if self.cfg["training"]["readout_refit"] else None
        precompute_neighbors(self.test_frames, self.model.cutoff, self.cache)
        test = self._evaluate(self.test_frames) if self.test_frames else {}
        val = self._evaluate(self.val_frames) if self.val_frames else {}
        metrics = {"test": test, "validation": val}
        if refit is not None:
            refit["validation_after"] = _mae_pair(val)
            metrics["readout_refit"] = refit
            self.log(
                f"readout refit: validation E MAE {refit['validation_before'].get('energy_mae_meV_per_atom')} -> "
                f"{refit['validation_after'].get('energy_mae_meV_per_atom')} meV/atom, F MAE "
                f"{refit['validation_before'].get('force_mae_eV_per_A')} -> "
                f"{refit['validation_after'].get('force_mae_eV_per_A')} eV/Å"
            )
        training = {
            "epochs": self.epoch,
            "steps": self.step,
            "best_epoch": self.best_epoch,
            "wall_time_s": round(self.elapsed_s, 1),
            "stopped_by": reason,
            "seed": self.seed,
        }
        if refit is not None:
            training["readout_refit"] = {
                k: refit[k] for k in ("ridge", "pref_e", "pref_f", "train_loss_before", "train_loss_after")
            }
        meta = {
            "optimizer": self.optimizer_name,
            "training_data": self.training_data,
            "metrics": {"split": "test", **test},
            "training": training,
        }
        model_path = export(self.model, self.run_dir / "model.pt", meta)
        summary = {
            "run": self.name,
            "model": str(model_path),
            "stopped_by": reason,
            "epochs": self.epoch,
            "steps": self.step,
            "best_epoch": self.best_epoch,
            "wall_time_s": round(self.elapsed_s, 1),
            "optimizer": self.optimizer_name,
            "activation": self.model.config().get("activation"),
            "training_data": self.training_data,
            **metrics,
        }
        fileio.write_json(self.run_dir / "metrics.json", summary)
        if test:
            self.log(
                f"test: energy RMSE {test['energy_rmse_meV_per_atom']:.3g} meV/atom, MAE "
                f"{test['energy_mae_meV_per_atom']:.3g}; force RMSE "
                f"{test.get('force_rmse_eV_per_A', float('nan')):.4g} eV/Å, MAE "
                f"{test.get('force_mae_eV_per_A', float('nan')):.4g}"
            )
        self.log(f"wrote {model_path} ({reason})")
        return summary
