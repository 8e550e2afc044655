"""Hand-built VASP OUTCAR, CP2K and Quantum ESPRESSO pw.x outputs for test_data_dft_outputs.py,
with every number chosen here (see that module for the conventions)."""

from __future__ import annotations

import numpy as np

# CODATA 2018, the constants dpdata uses; ASE's defaults (CODATA 2014) differ by < 1e-8 relative.
HARTREE_EV = 27.211386245988
RYDBERG_EV = HARTREE_EV / 2.0
BOHR_A = 0.529177210903
GPA_PER_EV_A3 = 160.2176634  # 1 eV/Å^3 = e · 1e30 Pa = 160.2176634 GPa
KBAR_GPA = 0.1

RTOL_UNITS = 1e-7  # unit conversions: CODATA 2014 vs 2018 constants
ATOL_EXACT = 1e-10  # numbers read straight from the file (Å, no conversion)


def voigt_to_matrix(xx, yy, zz, xy, yz, zx):
    return np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]], dtype=np.float64)


def _rows(matrix, fmt):
    return "\n".join(" ".join(fmt.format(x) for x in row) for row in matrix)


# --- VASP OUTCAR: Si2 in the fcc primitive cell (not lower triangular), two ionic steps ----------

VASP_STEPS = [
    {
        "cell": np.array([[0.0, 2.715, 2.715], [2.715, 0.0, 2.715], [2.715, 2.715, 0.0]]),
        "positions": np.array([[0.0, 0.0, 0.0], [1.40125, 1.3575, 1.33]]),
        "forces": np.array([[0.1234, -0.2345, 0.3456], [-0.1234, 0.2345, -0.3456]]),
        "toten": -10.5,  # free energy TOTEN, eV (the force-consistent energy)
        "sigma0": -10.495,  # energy(sigma->0), eV
        "in_kb": (12.5, -3.25, 7.0, 1.5, -0.75, 2.25),  # XX YY ZZ XY YZ ZX
    },
    {
        "cell": np.array([[0.0, 2.72, 2.72], [2.72, 0.0, 2.72], [2.72, 2.72, 0.0]]),
        "positions": np.array([[0.01, -0.02, 0.0], [1.36, 1.36, 1.36]]),
        "forces": np.array([[-0.05, 0.025, 0.0125], [0.05, -0.025, -0.0125]]),
        "toten": -10.625,
        "sigma0": -10.62,
        "in_kb": (-4.0, 5.5, 0.5, -1.25, 0.3, 0.8),
    },
]

VASP_HEADER = """ vasp.6.3.2 27Jun22 (build Jul 19 2022 13:14:24) complex

 executed on             LinuxIFC date 2024.03.01  12:00:00
 running on    1 total cores
 distrk:  each k-point on    1 cores,    1 groups
 distr:  one band on NCORE=   1 cores,    1 groups


--------------------------------------------------------------------------------------------------------


 INCAR:
   SYSTEM = Si2 relax
   ENCUT = 400
   NELM = 60
   IBRION = 2
   ISIF = 3
   NSW = 2

 POTCAR:    PAW_PBE Si 05Jan2001
 POTCAR:    PAW_PBE Si 05Jan2001
   VRHFIN =Si: s2p2
   LEXCH  = PE
   TITEL  = PAW_PBE Si 05Jan2001
   POMASS =   28.085; ZVAL   =    4.000    mass and valenz

 ion  position               nearest neighbor table
   1  0.000  0.000  0.000-
   2  0.250  0.250  0.250-

 Dimension of arrays:
   number of dos      NEDOS =    301   number of ions     NIONS =      2
   ions per type =               2

 SYSTEM =  Si2 relax
 POSCAR =  Si2

 Startparameter for this run:
   NWRITE =      2    write-flag & timer
   PREC   = normal    normal or accurate (medium, high low for compatibility)
   ISTART =      0    job   : 0-new  1-cont  2-samecut
   ISPIN  =      1    spin polarized calculation?

 Electronic Relaxation 1
   ENCUT  =  400.0 eV  29.40 Ry    5.42 a0
   NELM   =     60;   NELMIN=  2; NELMDL= -5     # of ELM steps
   EDIFF  = 0.1E-05   stopping-criterion for ELM

 Ionic relaxation
   NSW    =      2    number of steps for IOM
   IBRION =      2    ionic relax: 0-MD 1-quasi-New 2-CG
   ISIF   =      3    stress and relaxation

"""


def _vasp_step(k: int, step: dict) -> str:
    cell = step["cell"]
    volume = abs(np.linalg.det(cell))
    recip = np.linalg.inv(cell).T
    in_kb = np.array(step["in_kb"])
    total_ev = in_kb * KBAR_GPA / GPA_PER_EV_A3 * volume  # the "Total" line (eV); nobody reads it
    lattice = "\n".join(
        "   " + " ".join(f"{x:12.9f}" for x in cell[i]) + "   " + " ".join(f"{x:12.9f}" for x in recip[i])
        for i in range(3)
    )
    table = "\n".join(
        " " + " ".join(f"{x:12.5f}" for x in p) + "   " + " ".join(f"{x:13.6f}" for x in f)
        for p, f in zip(step["positions"], step["forces"])
    )
    return f"""--------------------------------------- Iteration      {k}(   1)  ---------------------------------------


    POTLOK:  cpu time      0.0123: real time      0.0125
    SETDIJ:  cpu time      0.0031: real time      0.0031
    EDDAV:   cpu time      0.0512: real time      0.0515

  free energy    TOTEN  =       {step["toten"] + 0.00123:.8f} eV

  energy without entropy=      {step["sigma0"] + 0.00123:.8f}  energy(sigma->0) =      {step["sigma0"] + 0.00123:.8f}


--------------------------------------------------------------------------------------------------------



 ------------------------ aborting loop because EDIFF is reached ----------------------------------------


 E-fermi :   6.1234     XC(G=0):  -8.8765     alpha+bet : -8.2345

  FORCE on cell =-STRESS in cart. coord.  units (eV):
  Direction    XX          YY          ZZ          XY          YZ          ZX
  --------------------------------------------------------------------------------------
  Alpha Z     4.51471     4.51471     4.51471
  Ewald     -84.22164   -84.22164   -84.22164     0.00000     0.00000    -0.00000
  Hartree     6.27960     6.27960     6.27960    -0.00000    -0.00000    -0.00000
  E(xc)     -24.35621   -24.35621   -24.35621     0.00000     0.00000     0.00000
  Local     -21.06455   -21.06455   -21.06455     0.00000     0.00000     0.00000
  n-local    62.54010    62.54010    62.54010     0.00000     0.00000     0.00000
  augment    -3.47567    -3.47567    -3.47567    -0.00000    -0.00000     0.00000
  Kinetic    59.81220    59.81220    59.81220     0.00000     0.00000     0.00000
  Fock        0.00000     0.00000     0.00000     0.00000     0.00000     0.00000
  -------------------------------------------------------------------------------------
  Total   {" ".join(f"{x:11.5f}" for x in total_ev)}
  in kB   {" ".join(f"{x:11.5f}" for x in in_kb)}
  external pressure =   {in_kb[:3].mean():11.2f} kB  Pullay stress =        0.00 kB


 VOLUME and BASIS-vectors are now :
 -----------------------------------------------------------------------------
  energy-cutoff  :      400.00
  volume of cell :   {volume:9.2f}
      direct lattice vectors                 reciprocal lattice vectors
{lattice}

  length of vectors
     {np.linalg.norm(cell[0]):12.9f} {np.linalg.norm(cell[1]):12.9f} {np.linalg.norm(cell[2]):12.9f}


 FORCES acting on ions
    electron-ion (+dipol)            ewald-force                    non-local-force                 convergence-correction
 -----------------------------------------------------------------------------------------------


 POSITION                                       TOTAL-FORCE (eV/Angst)
 -----------------------------------------------------------------------------------
{table}
 -----------------------------------------------------------------------------------
    total drift:                                0.000000      0.000000      0.000000


--------------------------------------------------------------------------------------------------------



  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)
  ---------------------------------------------------
  free  energy   TOTEN  =   {step["toten"]:16.8f} eV

  energy  without entropy=   {step["sigma0"]:16.8f}  energy(sigma->0) =   {step["sigma0"]:16.8f}



--------------------------------------------------------------------------------------------------------


"""


VASP_TRAILER = """
 General timing and accounting informations for this job:
 ========================================================

                  Total CPU time used (sec):        1.234
                            User time (sec):        1.100
"""


def write_outcar(path, steps=VASP_STEPS):
    path.write_text(VASP_HEADER + "".join(_vasp_step(k + 1, s) for k, s in enumerate(steps)) + VASP_TRAILER)
    return path


def vasp_expected_virial(step):
    """W = +(in kB tensor) · V, kbar -> eV/Å^3 by 0.1 GPa / 160.2176634 GPa."""
    kbar_in_ev_a3 = KBAR_GPA / GPA_PER_EV_A3
    return voigt_to_matrix(*step["in_kb"]) * kbar_in_ev_a3 * abs(np.linalg.det(step["cell"]))


# --- CP2K: Si2C, general non-orthogonal cell, energy in hartree, forces in hartree/bohr ---------------

CP2K_CELL = np.array([[3.9, 0.0, 0.2], [0.5, 3.8, 0.0], [0.0, 0.4, 4.1]])
CP2K_SYMBOLS = ["Si", "C", "Si"]
CP2K_KINDS = [1, 2, 1]
CP2K_POSITIONS = np.array([[0.0, 0.0, 0.0], [1.1, 0.6, 0.5], [2.05, 2.15, 2.25]])
CP2K_ENERGY_HA = -15.123456789
CP2K_FORCES_AU = np.array([[0.01, -0.02, 0.03], [-0.015, 0.005, -0.025], [0.005, 0.015, -0.005]])
CP2K_STRESS_GPA = np.array([[1.5, 0.25, -0.125], [0.25, -2.0, 0.375], [-0.125, 0.375, 0.75]])


def cp2k_text(modern: bool, unit: str = "GPa") -> str:
    cell_lines = "\n".join(
        f" CELL| Vector {name} [angstrom]: {v[0]:9.3f} {v[1]:9.3f} {v[2]:9.3f}    |{name}| = {np.linalg.norm(v):11.3f}"
        for name, v in zip("abc", CP2K_CELL)
    )
    coords = "\n".join(
        f"  {i + 1:6d} {k:5d} {s:2s} {14 if s == 'Si' else 6:3d} {p[0]:11.6f} {p[1]:11.6f} {p[2]:11.6f}"
        f"      4.00  {28.0855 if s == 'Si' else 12.0107:11.4f}"
        for i, (s, k, p) in enumerate(zip(CP2K_SYMBOLS, CP2K_KINDS, CP2K_POSITIONS))
    )
    forces = "\n".join(
        f"  {i + 1:5d} {k:6d}      {s:2s}   {f[0]:14.8f} {f[1]:14.8f} {f[2]:14.8f}"
        for i, (s, k, f) in enumerate(zip(CP2K_SYMBOLS, CP2K_KINDS, CP2K_FORCES_AU))
    )
    printed = CP2K_STRESS_GPA * {"GPa": 1.0, "bar": 1e4}[unit]
    trace = np.trace(printed) / 3.0
    if modern:  # CP2K >= 8.1 (virial_methods.F write_stress_tensor)
        energy_label = "energy [a.u.]:"
        stress = (
            f" STRESS| Analytical stress tensor [{unit}]\n"
            " STRESS|                        x                   y                   z\n"
            + "\n".join(
                f" STRESS|      {c}    " + " ".join(f"{x:19.11E}" for x in row) for c, row in zip("xyz", printed)
            )
            + f"\n STRESS| 1/3 Trace                                      {trace:19.11E}\n"
        )
    else:  # CP2K <= 7
        energy_label = "energy (a.u.):"
        stress = (
            " STRESS TENSOR [GPa]\n\n"
            "            X               Y               Z\n"
            + "\n".join(f"  {c}   " + " ".join(f"{x:15.8f}" for x in row) for c, row in zip("XYZ", CP2K_STRESS_GPA))
            + f"\n\n  1/3 Trace(stress tensor):  {trace:15.8E}\n"
        )
    version = "2023.1" if modern else "7.1"
    return f""" DBCSR| Multiplication driver                                               XSMM
 DBCSR| Multrec recursion limit                                              512


  **** **** ******  **  PROGRAM STARTED AT               2024-03-01 12:00:00.000
 ***** ** ***  *** **   PROGRAM STARTED ON                              node001

 CP2K| version string:                                        CP2K version {version}
 CP2K| Input file name                                                 input.inp

 GLOBAL| Project name                                                     SI2C
 GLOBAL| Run type                                                   ENERGY_FORCE
 GLOBAL| Global print level                                               MEDIUM

 CELL| Volume [angstrom^3]:                                   {abs(np.linalg.det(CP2K_CELL)):15.3f}
{cell_lines}

 ATOMIC KIND INFORMATION

  1. Atomic kind: Si                                    Number of atoms:       2

     Orbital Basis Set                                             DZVP-MOLOPT-SR-GTH

  2. Atomic kind: C                                     Number of atoms:       1

     Orbital Basis Set                                             DZVP-MOLOPT-SR-GTH


 MODULE QUICKSTEP:  ATOMIC COORDINATES IN angstrom

  Atom  Kind  Element       X           Y           Z          Z(eff)       Mass

{coords}



 SCF WAVEFUNCTION OPTIMIZATION

  Step     Update method      Time    Convergence         Total energy    Change
  ------------------------------------------------------------------------------
     1 OT DIIS     0.15E+00    0.1     0.00001234       -15.1234567890 -1.51E+01

  *** SCF run converged in     1 steps ***


 ENERGY| Total FORCE_EVAL ( QS ) {energy_label}             {CP2K_ENERGY_HA:.12f}


 ATOMIC FORCES in [a.u.]

 # Atom   Kind   Element          X              Y              Z
{forces}
 SUM OF ATOMIC FORCES           0.00000000     0.00000000     0.00000000     0.00000000

{stress}

 -------------------------------------------------------------------------------
  **** **** ******  **  PROGRAM ENDED AT                 2024-03-01 12:00:09.000
"""


def write_cp2k(path, modern=False, unit="GPa"):
    path.write_text(cp2k_text(modern, unit))
    return path


# --- Quantum ESPRESSO pw.x: Cu2 in a sheared cell (not lower triangular), crystal coordinates --------

QE_CELL = np.array([[3.6, 0.0, 0.0], [0.0, 3.5, 0.9], [0.4, 0.3, 3.7]])
QE_FRACTIONAL = np.array([[0.0, 0.0, 0.0], [0.5, 0.25, 0.5]])
QE_ENERGY_RY = -426.25
QE_FORCES_RY_BOHR = np.array([[0.001, -0.002, 0.003], [-0.001, 0.002, -0.003]])
QE_STRESS_KBAR = np.array([[-12.5, 1.25, 0.5], [1.25, 7.75, -2.0], [0.5, -2.0, 3.0]])
QE_RY_BOHR3_PER_KBAR = 1.0 / (RYDBERG_EV / BOHR_A**3 * GPA_PER_EV_A3 / KBAR_GPA)


def _qe_input() -> str:
    cell = _rows(QE_CELL, "{:14.9f}")
    positions = "\n".join(f"Cu {p[0]:12.8f} {p[1]:12.8f} {p[2]:12.8f}" for p in QE_FRACTIONAL)
    return f"""&CONTROL
  calculation = 'scf'
  prefix = 'cu2'
  tprnfor = .true.
  tstress = .true.
  pseudo_dir = './'
/
&SYSTEM
  ibrav = 0
  nat = 2
  ntyp = 1
  ecutwfc = 45
  occupations = 'smearing'
  smearing = 'mv'
  degauss = 0.02
/
&ELECTRONS
  conv_thr = 1.0d-8
/
ATOMIC_SPECIES
Cu 63.546 Cu.pbe-dn-kjpaw_psl.1.0.0.UPF
CELL_PARAMETERS angstrom
{cell}
ATOMIC_POSITIONS crystal
{positions}
K_POINTS automatic
1 1 1 0 0 0
"""


def qe_output() -> str:
    alat_bohr = np.linalg.norm(QE_CELL[0]) / BOHR_A
    axes = "\n".join(
        f"               a({i + 1}) = ( {v[0]:10.6f} {v[1]:10.6f} {v[2]:10.6f} )  "
        for i, v in enumerate(QE_CELL / (alat_bohr * BOHR_A))
    )
    cart_alat = QE_FRACTIONAL @ QE_CELL / (alat_bohr * BOHR_A)
    sites = "\n".join(
        f"         {i + 1}           Cu  tau(   {i + 1}) = (  {p[0]:10.7f}  {p[1]:10.7f}  {p[2]:10.7f}  )"
        for i, p in enumerate(cart_alat)
    )
    forces = "\n".join(
        f"     atom    {i + 1} type  1   force =   {f[0]:14.8f}{f[1]:14.8f}{f[2]:14.8f}"
        for i, f in enumerate(QE_FORCES_RY_BOHR)
    )
    stress = "\n".join(
        "  " + "".join(f"{x * QE_RY_BOHR3_PER_KBAR:13.8f}" for x in row) + "  " + "".join(f"{x:13.2f}" for x in row)
        for row in QE_STRESS_KBAR
    )
    return f"""
     Program PWSCF v.7.2 starts on  1Mar2024 at 12: 0: 0

     This program is part of the open-source Quantum ESPRESSO suite

     Reading input from pw.in

     bravais-lattice index     =            0
     lattice parameter (alat)  =   {alat_bohr:10.4f}  a.u.
     unit-cell volume          =   {abs(np.linalg.det(QE_CELL)) / BOHR_A**3:10.4f} (a.u.)^3
     number of atoms/cell      =            2
     number of atomic types    =            1
     number of electrons       =        22.00
     kinetic-energy cutoff     =      45.0000  Ry
     convergence threshold     =      1.0E-08

     celldm(1)=  {alat_bohr:11.6f}  celldm(2)=   0.000000  celldm(3)=   0.000000
     celldm(4)=   0.000000  celldm(5)=   0.000000  celldm(6)=   0.000000

     crystal axes: (cart. coord. in units of alat)
{axes}

     Cartesian axes

     site n.     atom                  positions (alat units)
{sites}

     number of k points=     1  Methfessel-Paxton smearing, width (Ry)=  0.0200
                       cart. coord. in units 2pi/alat
        k(    1) = (   0.0000000   0.0000000   0.0000000), wk =   2.0000000

     total cpu time spent up to now is        0.5 secs

     End of self-consistent calculation

          k = 0.0000 0.0000 0.0000 (   811 PWs)   bands (ev):

    -1.2345   4.5678   5.6789   5.6790   6.7891   7.8912   8.9123   9.1234
    10.2345  11.3456  12.4567  13.5678  14.6789

     the Fermi energy is    13.1234 ev

!    total energy              = {QE_ENERGY_RY:17.8f} Ry
     estimated scf accuracy    <          0.00000004 Ry
     smearing contrib. (-TS)   =      -0.00012345 Ry
     internal energy E=F+TS    = {QE_ENERGY_RY + 0.00012345:17.8f} Ry

     convergence has been achieved in   9 iterations

     Forces acting on atoms (cartesian axes, Ry/au):

{forces}

     Total force =     0.005292     Total SCF correction =     0.000012


     Computing stress (Cartesian axis) and pressure

          total   stress  (Ry/bohr**3)                   (kbar)     P=  {np.trace(QE_STRESS_KBAR) / 3:12.2f}
{stress}


     Writing all to output data dir ./cu2.save/

     JOB DONE.
"""


def write_qe(directory, name="pw"):
    """``<name>.in`` and ``<name>.out``: dpdata finds the input by replacing 'out' with 'in'."""
    (directory / f"{name}.in").write_text(_qe_input())
    out = directory / f"{name}.out"
    out.write_text(qe_output())
    return out


def qe_expected():
    """Cartesian positions from the crystal coordinates; W = +(kbar tensor) · V."""
    volume = abs(np.linalg.det(QE_CELL))
    return {
        "positions": QE_FRACTIONAL @ QE_CELL,
        "energy": QE_ENERGY_RY * RYDBERG_EV,
        "forces": QE_FORCES_RY_BOHR * RYDBERG_EV / BOHR_A,
        "virial": QE_STRESS_KBAR * KBAR_GPA / GPA_PER_EV_A3 * volume,
    }


# --- the unit constants above, against ASE's (an independent source) ------------------------
