"""The model-file contract check: does a model file (or module) keep ABI v1 (DESIGN.md section 3)?

    report = validate_model("cu.pt")        # a path, or any nn.Module / ScriptModule keeping the ABI
    print(report.format())                  # one line per check: PASS/FAIL/SKIP, name, detail
    report.passed                           # no check failed

``mdval check MODEL.pt`` prints the same report (``--json`` for JSON). A file that cannot be
read at all (missing, not a TorchScript archive) raises :class:`ModelFileError`; everything else
becomes a check that passes or fails, with numbers. The checks, in order:

===========  ======================================================================================
metadata     every key of ``mdval.abi.REQUIRED_METADATA_KEYS``, of its type (:data:`METADATA_TYPES`),
             and the value rules of ``model_file.check_metadata`` (cutoff > 0, type_names, dtype)
abi          ``abi`` is the version this mdval serves
species      metadata type_names against the network (``model_file.check_network_species``)
output       forward() returns float64 [n_local] on every structure below, also with ghost nodes
             and with no edges (``mdval.abi.energies_contract_error``, as ``lmp`` words it)
inputs       forward() leaves its input tensors as they were (callers reuse them for forces)
finite       energies and forces (autograd on the edge vectors) are finite (``non_finite_atoms``)
forces       F = -dE/dx: central finite differences of the energy against the autograd forces
cutoff       edges beyond the cutoff contribute exactly zero: a list built with a skin gives the
             same energies and forces, and zero gradient on its extra edges
locality     moving atoms that are all beyond the cutoff of a cluster leaves that cluster's
             energies and forces unchanged, with the edges to them in the list
translation  a periodic cell translated by a random vector, atoms wrapped back into the cell
rotation     structure and cell rotated: energies unchanged, forces rotated with it
permutation  atoms renumbered: energies and forces renumbered with them
ghosts       periodic images as ghost nodes (as ``pair_style taafs`` passes them) against images in
             the edge vectors (as the ASE calculator passes them)
===========  ======================================================================================

Checks that need a working forward() are skipped once ``output`` or ``finite`` fails. The
structures are built with ASE from type_names and the cutoff, the neighbour lists by
``mdval.data.neighbors``: a rattled 32-atom fcc cell of each element (and one of mixed species
when there are several), a rattled 13-atom icosahedral cluster of all species, an isolated atom,
and two such clusters a little more than a cutoff apart. This follows torch-sim's
``validate_model_outputs`` (small ASE structures, output shapes, inputs left unchanged) for our
ABI, and adds the physics an MD engine relies on.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from ase.geometry import wrap_positions

from mdval.abi import ABI_VERSION, COMPUTE_DTYPES, METADATA_FILENAME, REQUIRED_METADATA_KEYS
from mdval.deploy.model_file import (
    ModelFile,
    ModelFileError,
    ModelOutputError,
    check_metadata,
    check_network_species,
    model_metadata,
    non_finite_atoms,
    non_finite_error,
    quiet_torchscript,
    read_metadata,
    torch_reason,
)
from mdval.deploy.probes import (
    Graph,
    Result,
    Structure,
    beyond,
    cluster,
    evaluate,
    probe_structures,
    random_rotation,
)

#: The JSON type of each required metadata key (bool is never an int here).
METADATA_TYPES: dict[str, tuple[type, ...]] = {
    "abi": (int,),
    "cutoff": (int, float),
    "type_names": (list,),
    "compute_dtype": (str,),
    "architecture": (str,),
    "activation": (str, dict),
    "optimizer": (str,),
    "training_data": (dict,),
    "metrics": (dict,),
    "mdval_version": (str,),
    "created": (str,),
}

#: Invariance checks compare the same physics through another neighbour-list order, other matrix
#: shapes or rotated (rounded) coordinates, so they agree to rounding, not bit for bit: the
#: largest difference must stay below this times the largest |E_i| (eV) or |F| (eV/Å) compared,
#: or times 1 eV (eV/Å) where that is larger (rounding scales with the network's intermediates,
#: not with E_i, which may be near 0). By compute dtype; measured on the zoo: at most 2e-14 in
#: float64 and 4e-6 in float32. A model that breaks a symmetry by 1 meV is off by 1e-3.
INVARIANCE_RTOL: dict[str, float] = {"float64": 1e-9, "float32": 1e-4}
#: Finite-difference step (Å) and tolerance (of the largest |F|, or of 1 eV/Å) of the forces
#: check. float64: the truncation h^2 E'''/6 is at most 8e-9 eV/Å on the zoo at 3e-5 Å, the
#: rounding eps |E| / h 1e-10 eV/Å (1e-7 for 1000 eV per atom). float32: rounding dominates
#: (at most 1.3e-3 eV/Å on the zoo at 1e-2 Å; shorter steps make it worse).
FD_STEP_A: dict[str, float] = {"float64": 3e-5, "float32": 1e-2}
FD_RTOL: dict[str, float] = {"float64": 1e-6, "float32": 2e-2}
SCALE_FLOOR = 1.0  # eV or eV/Å: see INVARIANCE_RTOL

SKIN_A = 2.0  # extra radius of the lists with edges beyond the cutoff (Å)
GAP_A = 0.5  # the two clusters of the locality check start this far beyond the cutoff (Å)

#: The checks in report order; those after "output" call forward().
CHECK_NAMES = (
    "metadata",
    "abi",
    "species",
    "output",
    "inputs",
    "finite",
    "forces",
    "cutoff",
    "locality",
    "translation",
    "rotation",
    "permutation",
    "ghosts",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str  # one line, with the numbers


@dataclass
class CheckReport:
    """The results of :func:`validate_model` on one model, in :data:`CHECK_NAMES` order."""

    model: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if r.status == "fail"]

    def __getitem__(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def format(self) -> str:
        """One line per check, then a summary line."""
        lines = [f"{r.status.upper():4}  {r.name:<11}  {r.detail}" for r in self.results]
        n = len(self.results)
        if self.failed:
            summary = f"{self.model}: {len(self.failed)} of {n} checks failed: {', '.join(self.failed)}"
        else:
            summary = f"{self.model}: all {n} checks passed"
        return "\n".join(lines + [summary])

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "passed": self.passed,
            "checks": [{"name": r.name, "status": r.status, "detail": r.detail} for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


# ------------------------------------------------------------------------- the checks
class Probe:
    """What the checks that call forward() share: the model, its tolerances, the structures and
    their results on the plain neighbour list (computed once)."""

    def __init__(self, model_file: ModelFile, compute_dtype: str, seed: int):
        self.model = model_file
        self.cutoff = model_file.cutoff
        self.rtol = INVARIANCE_RTOL[compute_dtype]
        self.fd_step = FD_STEP_A[compute_dtype]
        self.fd_rtol = FD_RTOL[compute_dtype]
        self.seed = seed
        self.structures = probe_structures(model_file.type_names, self.rng(0))
        self.cells = [s for s in self.structures if s.pbc.all()]
        self.cluster = next(s for s in self.structures if s.name == "cluster")
        self.second = cluster(model_file.type_names, self.rng(1), "second cluster")
        self.pair = beyond(self.cluster, self.second, self.cutoff + GAP_A)
        self._results: dict[tuple[str, bool], Result] = {}

    def rng(self, stream: int) -> np.random.Generator:
        """An independent random stream, so that each check sees the same numbers whatever ran."""
        return np.random.default_rng((self.seed, stream))

    def run(self, structure: Structure, *, skin_A: float = 0.0, ghosts: bool = False) -> Result:
        return evaluate(self.model, Graph.of(structure, self.cutoff + skin_A), structure.positions, ghosts=ghosts)

    def base(self, structure: Structure, ghosts: bool = False) -> Result:
        """The result of one of :attr:`structures` on the list at the cutoff (cached)."""
        key = (structure.name, ghosts)
        if key not in self._results:
            self._results[key] = self.run(structure, ghosts=ghosts)
        return self._results[key]

    def tolerance(self, values: np.ndarray, rtol: float | None = None) -> float:
        scale = max(float(np.max(np.abs(values), initial=0.0)), SCALE_FLOOR)
        return (self.rtol if rtol is None else rtol) * scale

    def agreement(self, pairs: list[tuple[Result, Result]]) -> tuple[bool, str]:
        """Whether each (reference, other) pair, atoms and force axes aligned, agrees to the
        invariance tolerance; the detail gives the largest differences."""
        e_ref, e_new, f_ref, f_new = (
            np.concatenate([getattr(p[k], a).ravel() for p in pairs]) for a in ("energies", "forces") for k in (0, 1)
        )
        de = float(np.max(np.abs(e_new - e_ref), initial=0.0))
        df = float(np.max(np.abs(f_new - f_ref), initial=0.0))
        tol_e, tol_f = self.tolerance(e_ref), self.tolerance(f_ref)
        ok = de <= tol_e and df <= tol_f
        return ok, (f"max |ΔE_i| {de:.1e} eV, max |ΔF| {df:.1e} eV/Å (tolerance {tol_e:.1e} eV, {tol_f:.1e} eV/Å)")


def aligned(energies: np.ndarray, forces: np.ndarray) -> Result:
    """A result to compare, its atoms (and force axes) put in the order of the reference."""
    return Result(energies, forces, np.zeros((0, 3)))


def check_species(probe: Probe) -> tuple[bool, str]:
    check_network_species(probe.model)
    names = ", ".join(probe.model.type_names)
    return True, f"type_names [{names}] match the network; one atom of each species evaluates"


def check_output(probe: Probe) -> tuple[bool, str]:
    atoms, edges, ghosts = [], [], []
    for structure in probe.structures:
        for with_ghosts in (False, True) if structure.pbc.all() else (False,):
            result = probe.base(structure, with_ghosts)
            atoms.append(len(result.energies))
            edges.append(len(result.edge_grad))
            if with_ghosts:
                ghosts.append(int(Graph.of(structure, probe.cutoff).shifts.any(axis=1).sum()))
    return True, (
        f"float64 energies [n_local] on {len(atoms)} inputs: {min(atoms)}-{max(atoms)} "
        f"atoms, {min(edges)}-{max(edges)} edges, up to {max(ghosts)} ghost nodes"
    )


INPUT_NAMES = ("species", "edge_index", "edge_vectors")


def check_inputs(probe: Probe) -> tuple[bool, str]:
    for structure in (probe.cluster, probe.cells[0]):
        inputs = Graph.of(structure, probe.cutoff).inputs(
            structure.positions, probe.model.device, ghosts=bool(structure.pbc.all())
        )
        kept = {name: t.clone() for name, t in zip(INPUT_NAMES, inputs[:3], strict=True)}
        with torch.enable_grad():
            probe.model(*inputs)
        changed = [
            name
            for (name, before), after in zip(kept.items(), inputs[:3], strict=True)
            if not torch.equal(before, after)
        ]
        if changed:
            return False, (
                f"forward() changed its input {', '.join(changed)} in place on the "
                f"{structure.name}: callers reuse the inputs for forces and virials; "
                "compute on a copy"
            )
    return True, "species, edge_index and edge_vectors as they were after forward()"


def check_finite(probe: Probe) -> tuple[bool, str]:
    for structure in probe.structures:
        result = probe.base(structure)
        bad = non_finite_atoms(torch.from_numpy(result.energies), torch.from_numpy(result.forces))
        if bad is not None:
            return False, str(non_finite_error("the model", bad, len(result.energies), f" on the {structure.name}"))
    energies = np.concatenate([probe.base(s).energies for s in probe.structures])
    forces = np.concatenate([probe.base(s).forces for s in probe.structures])
    return True, (
        f"on {len(probe.structures)} structures, {len(energies)} atoms: E_i from "
        f"{energies.min():.4g} to {energies.max():.4g} eV, max |F| "
        f"{np.abs(forces).max():.3g} eV/Å"
    )


def total_energy(model_file: ModelFile, graph: Graph, positions: np.ndarray) -> float:
    """The energy (eV) of atoms at ``positions`` on ``graph``'s fixed edges, without autograd."""
    with torch.no_grad():
        return float(model_file(*graph.inputs(positions, model_file.device)).sum())


def check_forces(probe: Probe) -> tuple[bool, str]:
    h = probe.fd_step
    differences, autograd = [], []
    for structure, n_moved in ((probe.cluster, len(probe.cluster.species)), (probe.cells[0], 2)):
        graph = Graph.of(structure, probe.cutoff + SKIN_A)  # fixed edges, none crosses the cutoff
        forces = evaluate(probe.model, graph, structure.positions).forces
        for atom in range(n_moved):
            for axis in range(3):
                plus, minus = structure.positions.copy(), structure.positions.copy()
                plus[atom, axis] += h
                minus[atom, axis] -= h
                difference = total_energy(probe.model, graph, plus) - total_energy(probe.model, graph, minus)
                numeric = -difference / (plus[atom, axis] - minus[atom, axis])
                differences.append(abs(numeric - forces[atom, axis]))
                autograd.append(forces[atom, axis])
    worst, tol = max(differences), probe.tolerance(np.array(autograd), probe.fd_rtol)
    return worst <= tol, (
        f"central differences (h = {h:g} Å) of {len(differences)} force "
        f"components on the cluster and a cell: max |F_fd - F| {worst:.1e} eV/Å "
        f"(tolerance {tol:.1e} eV/Å)"
    )


def check_cutoff(probe: Probe) -> tuple[bool, str]:
    pairs, extra_grad, n_extra = [], [], 0
    for structure in (probe.cells[0], probe.pair):
        plain = probe.run(structure)
        graph = Graph.of(structure, probe.cutoff + SKIN_A)
        wide = evaluate(probe.model, graph, structure.positions)
        outside = np.linalg.norm(graph.vectors(structure.positions), axis=1) >= probe.cutoff
        n_extra += int(outside.sum())
        extra_grad.append(wide.edge_grad[outside].ravel())
        pairs.append((plain, wide))
    ok, detail = probe.agreement(pairs)
    grad = float(np.max(np.abs(np.concatenate(extra_grad)), initial=0.0))
    tol = probe.tolerance(np.concatenate([p[0].forces.ravel() for p in pairs]))
    return ok and grad <= tol, (
        f"{n_extra} edges from {probe.cutoff:g} to {probe.cutoff + SKIN_A:g} Å added (a cell, two "
        f"clusters): {detail}; max |dE/dr| on those edges {grad:.1e} eV/Å"
    )


def check_locality(probe: Probe) -> tuple[bool, str]:
    rng = probe.rng(2)
    n = len(probe.cluster.species)
    second = probe.second  # all beyond the cutoff of the cluster: moved 0.1 Å each, then shifted
    deformed = second.moved(second.positions + rng.normal(0.0, 0.1, second.positions.shape))
    moved = beyond(probe.cluster, deformed, probe.cutoff + 2 * GAP_A)
    before = probe.run(probe.pair, skin_A=SKIN_A)
    after = probe.run(moved, skin_A=SKIN_A)
    graph = Graph.of(probe.pair, probe.cutoff + SKIN_A)
    links = int(((graph.centers < n) & (graph.neighbors >= n)).sum())
    ok, detail = probe.agreement(
        [(aligned(before.energies[:n], before.forces[:n]), aligned(after.energies[:n], after.forces[:n]))]
    )
    return ok, (
        f"a second cluster beyond the {probe.cutoff:g} Å cutoff of the {n}-atom cluster "
        f"({links} edges to it in a list with a {SKIN_A:g} Å skin) moved and deformed: "
        f"the first cluster's {detail}"
    )


def check_translation(probe: Probe) -> tuple[bool, str]:
    rng = probe.rng(3)
    pairs = []
    for structure in probe.cells:
        shift = rng.uniform(0.0, 1.0, 3) @ structure.cell
        moved = structure.moved(wrap_positions(structure.positions + shift, structure.cell, pbc=True))
        pairs.append((probe.base(structure), probe.run(moved)))
    ok, detail = probe.agreement(pairs)
    return ok, f"{len(pairs)} periodic cell(s) translated by a random vector and wrapped: {detail}"


def check_rotation(probe: Probe) -> tuple[bool, str]:
    rotation = random_rotation(probe.rng(4))
    pairs = []
    for structure in probe.cells + [probe.cluster]:
        rotated = probe.run(structure.moved(structure.positions @ rotation.T, structure.cell @ rotation.T))
        pairs.append((probe.base(structure), aligned(rotated.energies, rotated.forces @ rotation)))
    ok, detail = probe.agreement(pairs)
    return ok, f"{len(pairs)} structures rotated at random (forces rotated back): {detail}"


def check_permutation(probe: Probe) -> tuple[bool, str]:
    rng = probe.rng(5)
    pairs = []
    for structure in probe.cells + [probe.cluster]:
        order = rng.permutation(len(structure.species))
        renumbered = replace(structure, positions=structure.positions[order], species=structure.species[order])
        base = probe.base(structure)
        pairs.append((aligned(base.energies[order], base.forces[order]), probe.run(renumbered)))
    ok, detail = probe.agreement(pairs)
    return ok, f"atoms of {len(pairs)} structures renumbered at random: {detail}"


def check_ghosts(probe: Probe) -> tuple[bool, str]:
    pairs = [(probe.base(s), probe.base(s, ghosts=True)) for s in probe.cells]
    ok, detail = probe.agreement(pairs)
    return ok, (
        f"{len(pairs)} periodic cell(s) with their images as ghost nodes (as in LAMMPS) "
        f"against images in the edge vectors (as in ASE): {detail}"
    )


#: The checks that call forward(), in order; a failure of a gate skips the checks after it.
RUNTIME_CHECKS = (
    ("species", check_species),
    ("output", check_output),
    ("inputs", check_inputs),
    ("finite", check_finite),
    ("forces", check_forces),
    ("cutoff", check_cutoff),
    ("locality", check_locality),
    ("translation", check_translation),
    ("rotation", check_rotation),
    ("permutation", check_permutation),
    ("ghosts", check_ghosts),
)
GATES = ("output", "finite")


# ------------------------------------------------------------------------- metadata and entry point
def _without_path(message: str, path) -> str:
    """A ModelFileError message without its leading "PATH: " (the report names the model once)."""
    return message.removeprefix(f"{path}: ")


def _has_type(value, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def check_metadata_keys(meta, problem: str | None, path) -> tuple[bool, str]:
    """Every required key, its value rules (``check_metadata``) and its type; not the abi, which
    has a check of its own."""
    if not isinstance(meta, dict):
        return False, _without_path(
            problem or f"{METADATA_FILENAME} must hold a JSON object, got {type(meta).__name__}", path
        )
    try:
        check_metadata({**meta, "abi": ABI_VERSION} if "abi" in meta else meta, path)
    except ModelFileError as exc:
        return False, _without_path(str(exc), path)
    wrong = [
        f"{key} is {type(meta[key]).__name__}, expected {' or '.join(t.__name__ for t in types)}"
        for key, types in METADATA_TYPES.items()
        if key in meta and not _has_type(meta[key], types)
    ]
    if wrong:
        return False, f"metadata of the wrong type: {'; '.join(wrong)}; re-export the model"
    return True, (
        f"{len(REQUIRED_METADATA_KEYS)} required keys of the right types: cutoff "
        f"{meta['cutoff']:g} Å, type_names [{', '.join(meta['type_names'])}], "
        f"{meta['compute_dtype']}, {meta['architecture']}, optimizer {meta['optimizer']}"
    )


def check_abi(meta) -> tuple[bool, str]:
    abi = meta.get("abi") if isinstance(meta, dict) else None
    if abi == ABI_VERSION and not isinstance(abi, bool):
        return True, f"abi {ABI_VERSION}, the model-file ABI this mdval and pair_style taafs serve"
    return False, (
        f"abi {abi!r}, but this mdval and pair_style taafs serve abi {ABI_VERSION}: use "
        "the mdval version that wrote the file or re-export the model"
    )


def _runnable(meta) -> bool:
    """Whether the metadata gives what the test structures are built from (cutoff, type_names)."""
    if not isinstance(meta, dict):
        return False
    cutoff, names = meta.get("cutoff"), meta.get("type_names")
    return (
        _has_type(cutoff, (int, float))
        and math.isfinite(cutoff)
        and cutoff > 0
        and isinstance(names, list)
        and bool(names)
        and all(isinstance(n, str) and n for n in names)
    )


def _open(model, metadata: dict | None, device: torch.device) -> tuple[ModelFile, object, str | None, str]:
    """(model file, its raw metadata, why read_metadata refuses it or None, label) of a path or
    a module; raises :class:`ModelFileError` for a file TorchScript cannot read."""
    if isinstance(model, torch.nn.Module):
        meta = dict(metadata or {})
        if all(hasattr(model, key) for key in ("cutoff", "type_names", "architecture")):
            meta = model_metadata(model, metadata)  # what export would write
        label = f"<{type(model).__name__}>"
        return ModelFile(model, meta, Path(label), device), meta, None, label
    path = Path(model)
    try:
        read_metadata(path)
        problem = None
    except ModelFileError as exc:
        problem = str(exc)
    extra = {METADATA_FILENAME: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError with a long C++ trace
        raise ModelFileError(
            problem
            or (
                f"{path} could not be loaded by TorchScript ({torch_reason(exc)}): the file is corrupt "
                "or from an incompatible torch; re-export it with `mdval export CHECKPOINT`"
            )
        ) from None
    module.eval()
    try:
        meta = json.loads(extra[METADATA_FILENAME]) if extra[METADATA_FILENAME] else None
    except json.JSONDecodeError:
        meta = None  # ``problem`` says why
    return ModelFile(module, meta if isinstance(meta, dict) else {}, path, device), meta, problem, str(path)


def _runtime_results(probe: Probe) -> list[CheckResult]:
    results, blocked = [], None
    for name, check in RUNTIME_CHECKS:
        if blocked:
            results.append(CheckResult(name, "skip", blocked))
            continue
        try:
            ok, detail = check(probe)
        except (ModelFileError, ModelOutputError) as exc:
            ok, detail = False, _without_path(str(exc), probe.model.path)
        except RuntimeError as exc:  # autograd on the model's output
            ok, detail = False, f"{name} raised {torch_reason(exc)}"
        results.append(CheckResult(name, "pass" if ok else "fail", detail))
        if not ok and name in GATES:
            blocked = f"needs a forward() that passes the {name} check"
    return results


def validate_model(
    model: str | os.PathLike | torch.nn.Module,
    *,
    metadata: dict | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> CheckReport:
    """Check a model file, or a module keeping the ABI, against the model-file contract.

    ``model``: a path, or an ``nn.Module`` / ``ScriptModule``, whose metadata is what ``export``
    would write for it updated by ``metadata`` (a module that does not declare ``cutoff``,
    ``type_names`` and ``architecture`` needs them there; a file carries its own metadata, and
    ``metadata`` is not used). ``seed`` chooses the random rattles, shifts, rotations and
    renumberings. Returns the :class:`CheckReport`; raises :class:`ModelFileError` only for a
    file that cannot be read at all.
    """
    device = torch.device(device)
    model_file, meta, problem, label = _open(model, metadata, device)
    results = [
        CheckResult(name, "pass" if ok else "fail", detail)
        for name, (ok, detail) in (
            ("metadata", check_metadata_keys(meta, problem, model_file.path)),
            ("abi", check_abi(meta)),
        )
    ]
    if not _runnable(meta):
        reason = "needs a positive cutoff and a list of type_names in the metadata"
        return CheckReport(label, results + [CheckResult(name, "skip", reason) for name, _ in RUNTIME_CHECKS])
    compute_dtype = meta.get("compute_dtype") if meta.get("compute_dtype") in COMPUTE_DTYPES else "float64"
    return CheckReport(label, results + _runtime_results(Probe(model_file, compute_dtype, seed)))
