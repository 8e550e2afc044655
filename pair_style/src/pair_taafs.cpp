/* ----------------------------------------------------------------------
   pair_style taafs: serve an mdval TorchScript model (ABI v1) to LAMMPS.

   Physics (DESIGN.md section 3).  Nodes are the non-NULL local atoms that are centres (first,
   n_local of them) followed by every other atom, local or ghost, that appears as a neighbour
   within the cutoff.  Edges come from the LAMMPS full neighbour list: centre i, neighbour j,
   vector r_ij = x_j - x_i (ghost positions already carry the periodic image, triclinic or not).
   With E = sum of the model's per-atom energies and g_e = dE/d r_e (autograd):
       F_i += g_e,  F_j -= g_e                         (ghost forces are reverse-communicated)
       W   = -sum_e r_e (x) g_e                        (global virial, eV)
       W_i += -1/2 r_e (x) g_e,  W_j += -1/2 r_e (x) g_e   (per-atom virial, only if asked)
   Requires newton pair on (ghost forces are summed by LAMMPS) and units metal (eV, Å).
   Memory: the centres go to the model in chunks (keyword chunk, see compute()), so that a rank
   never holds the per-edge intermediates of more than one chunk.
   The input commands (pair_style keywords, pair_coeff) and init are in pair_taafs_setup.cpp.
------------------------------------------------------------------------- */

#include "pair_taafs.h"

#include "pair_taafs_data.h"

#include <torch/csrc/autograd/autograd.h>

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"    // CENTROID_NOTAVAIL
#include "memory.h"
#include "neigh_list.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;

/* ---------------------------------------------------------------------- */

PairTaafs::PairTaafs(LAMMPS *lmp) :
    Pair(lmp), d_(new PairTaafsData), device_request_("auto"), nthreads_(0), cutoff_(0.0),
    chunk_atoms_(0), chunk_edges_(AUTO_CHUNK_EDGES), chunk_request_("auto"), report_chunks_(false),
    devi_out_freq_(0), devi_atomic_(false), devi_relative_f_(-1.0), devi_relative_v_(-1.0),
    devi_trigger_(0), devi_step_(false), devi_fp_(nullptr), devi_nmax_(0),
    devi_f_atom_(nullptr), devi_e_atom_(nullptr)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  no_virial_fdotr_compute = 1;    // the virial comes from the edges, exactly
  unit_convert_flag = utils::NOCONVERT;
  memory->create(pvector, N_DEVI_COLUMNS, "pair:pvector");    // the committee's last line
}

PairTaafs::~PairTaafs()
{
  if (copymode) return;
  close_devi_file();
  memory->destroy(devi_f_atom_);
  memory->destroy(devi_e_atom_);
  memory->destroy(pvector);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

/* ----------------------------------------------------------------------
   Input checks of compute().  They live in the loops that already visit every position and edge,
   and cost a compare per neighbour.  Each error is seen by one rank only, so it uses error->one
   (error->all would wait forever for the ranks that do not reach it).
------------------------------------------------------------------------- */

namespace {

// Atoms closer than this (Å) overlap: descriptors divide by r, so a model gives NaN forces.
constexpr double TAAFS_MIN_DISTANCE = 1e-6;

// r_j - r_i into d and its square: the one computation behind the edge test of both passes.
inline double edge_rsq(const double *xi, const double *xj, double *d)
{
  d[0] = xj[0] - xi[0];
  d[1] = xj[1] - xi[1];
  d[2] = xj[2] - xi[2];
  return d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
}

// The one edge test, used by pass 1 to count the edges and by pass 2 to fill them, so that the
// two agree even on a NaN distance (a count by `rsq < cut` and a skip by `rsq >= cut` did not,
// and a NaN position wrote past the edge buffer).
inline bool is_edge(double rsq, double cutsq) { return rsq < cutsq; }

inline bool is_finite3(const double *v)
{
  return std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2]);
}

// v, but NaN without its sign bit, so that messages say "nan" and never "-nan".
inline double unsigned_nan(double v) { return std::isnan(v) ? std::fabs(v) : v; }

// Index of the first non-finite value of v[0..n), or -1 when all are finite.
int64_t first_nonfinite(const double *v, int64_t n)
{
  for (int64_t k = 0; k < n; k++)
    if (!std::isfinite(v[k])) return k;
  return -1;
}

}    // namespace

void PairTaafs::error_nonfinite_position(int i)
{
  double **x = atom->x;
  error->one(FLERR,
             "pair_style taafs: atom {} has a non-finite position ({:.6g}, {:.6g}, {:.6g}) Å at "
             "step {}: expected finite coordinates (the run has blown up: check for overlapping "
             "atoms, velocities or forces that are not finite, or lower the timestep)",
             atom->tag[i], unsigned_nan(x[i][0]), unsigned_nan(x[i][1]), unsigned_nan(x[i][2]),
             update->ntimestep);
}

void PairTaafs::error_overlap(int i, int j, double rsq)
{
  error->one(FLERR,
             "pair_style taafs: atoms {} and {} are {:.3g} Å apart at step {}: expected at least "
             "{:g} Å (overlapping atoms: remove the duplicate, e.g. an atom created twice)",
             atom->tag[i], atom->tag[j], std::sqrt(rsq), update->ntimestep, TAAFS_MIN_DISTANCE);
}

/* ----------------------------------------------------------------------
   Pass 1: the centres (non-NULL atoms of the list) and the exact number of edges (non-NULL
   neighbours within the model cutoff) of each, which fixes the chunks and sizes the edge
   buffers.  Also rejects non-finite positions and overlapping atoms before any model call.
------------------------------------------------------------------------- */

void PairTaafs::count_edges()
{
  double **x = atom->x;
  const int *type = atom->type;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const int *species_of_type = species_of_type_.data();
  const double cutsq_model = cutoff_ * cutoff_;
  const double min_rsq = TAAFS_MIN_DISTANCE * TAAFS_MIN_DISTANCE;

  PairTaafsData &D = *d_;
  D.centres.clear();
  D.edges_of_centre.clear();
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    if (species_of_type[type[i]] < 0) continue;
    if (!is_finite3(x[i])) error_nonfinite_position(i);
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    int64_t n = 0;
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      if (species_of_type[type[j]] < 0) continue;
      double d[3];
      const double rsq = edge_rsq(x[i], x[j], d);
      // One branch that is almost never taken, for overlapping atoms and NaN distances; the
      // count stays branch-free, since whether a neighbour is an edge is unpredictable
      // (measured: this pass ran 3x slower with the checks inside an edge/no-edge branch).
      if (!(rsq >= min_rsq)) {
        if (std::isnan(rsq)) error_nonfinite_position(j);    // x[i] is finite: x[j] is not
        error_overlap(i, j, rsq);
      }
      n += is_edge(rsq, cutsq_model);
    }
    D.centres.push_back(i);
    D.edges_of_centre.push_back(n);
  }
}

/* ----------------------------------------------------------------------
   Centres are the non-NULL atoms of the (possibly skip) full list.  They are evaluated in chunks
   of consecutive centres, one model call per chunk, so that memory is bounded by the edges of one
   call rather than by all the atoms of the rank.  An ABI v1 model is local: the energy of centre
   i depends only on its own edges and the species of their neighbours, so each chunk sees exactly
   the inputs its centres see in one call for all (chunk centres first, renumbered 0..c-1, then
   their other neighbours, local or ghost), and the sums below are the same sums, grouped by
   chunk.  With one chunk (`chunk off`) this is the unchunked evaluation.
------------------------------------------------------------------------- */

void PairTaafs::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  PairTaafsData &D = *d_;
  // the same on every rank (the step, and fix pair sets the trigger everywhere): the deviation
  // step's reverse communication and reductions are collective
  devi_step_ = n_models() > 1 &&
      ((devi_out_freq_ > 0 && update->ntimestep % devi_out_freq_ == 0) || devi_trigger_);
  if (devi_step_) begin_deviation_step();

  count_edges();
  const int64_t n_centres = static_cast<int64_t>(D.centres.size());
  if (n_centres == 0) {    // a rank with no centres contributes nothing (but joins the committee)
    if (report_chunks_ && comm->me == 0)
      utils::logmesg(lmp, "pair_style taafs: {}; rank 0 evaluates 0 atoms\n", chunk_description());
    report_chunks_ = false;
    if (devi_step_) finish_deviation_step();
    return;
  }

  D.node_of_atom.assign(atom->nlocal + atom->nghost, -1);    // each chunk resets what it set
  double w[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int64_t begin = 0, n_calls = 0, most_edges = 0, total_edges = 0;
  while (begin < n_centres) {
    // a chunk takes at least one centre, then more while both limits allow
    int64_t end = begin + 1;
    int64_t n_edges = D.edges_of_centre[begin];
    while (end < n_centres && (chunk_atoms_ == 0 || end - begin < chunk_atoms_) &&
           (chunk_edges_ == 0 || n_edges + D.edges_of_centre[end] <= chunk_edges_))
      n_edges += D.edges_of_centre[end++];
    compute_chunk(begin, end, n_edges, w);
    n_calls++;
    most_edges = std::max(most_edges, n_edges);
    total_edges += n_edges;
    begin = end;
  }
  if (vflag_global)
    for (int k = 0; k < 6; k++) virial[k] += w[k];
  if (devi_step_) finish_deviation_step();

  if (report_chunks_ && comm->me == 0)    // once per run, from rank 0's own atoms
    utils::logmesg(lmp,
                   "pair_style taafs: {}; rank 0 evaluates {} atoms ({} edges) in {} model "
                   "call(s) of at most {} edges\n",
                   chunk_description(), n_centres, total_edges, n_calls, most_edges);
  report_chunks_ = false;
}

/* ----------------------------------------------------------------------
   Pass 2: the nodes and edges of centres [begin, end), in the order and by the test of pass 1:
   the chunk's centres first (nodes 0..n_local-1), then every other neighbour as it appears.
------------------------------------------------------------------------- */

void PairTaafs::fill_chunk(int64_t begin, int64_t end, int64_t n_edges)
{
  double **x = atom->x;
  const int *type = atom->type;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const int *species_of_type = species_of_type_.data();
  const double cutsq_model = cutoff_ * cutoff_;

  PairTaafsData &D = *d_;
  const int64_t n_local = end - begin;
  D.atom_of_node.clear();
  D.species.clear();
  for (int64_t c = begin; c < end; c++) {
    const int i = D.centres[c];
    D.node_of_atom[i] = static_cast<int>(c - begin);
    D.atom_of_node.push_back(i);
    D.species.push_back(species_of_type[type[i]]);
  }

  const size_t capacity = static_cast<size_t>(n_edges);
  if (D.edge_index.size() < 2 * capacity) D.edge_index.resize(2 * capacity);
  if (D.edge_vectors.size() < 3 * capacity) D.edge_vectors.resize(3 * capacity);
  int64_t *src = D.edge_index.data();
  int64_t *dst = src + capacity;    // row 1 right after row 0: [2, n_edges] contiguous
  double *vec = D.edge_vectors.data();

  size_t ne = 0;
  for (int64_t c = 0; c < n_local; c++) {
    const int i = D.atom_of_node[c];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const int s = species_of_type[type[j]];
      if (s < 0) continue;
      double d[3];
      if (!is_edge(edge_rsq(x[i], x[j], d), cutsq_model)) continue;
      const size_t e = ne++;
      if (e >= capacity) continue;    // never write past the buffers: reported below
      int node = D.node_of_atom[j];
      if (node < 0) {
        node = D.node_of_atom[j] = static_cast<int>(D.atom_of_node.size());
        D.atom_of_node.push_back(j);
        D.species.push_back(s);
      }
      src[e] = c;
      dst[e] = node;
      vec[3 * e] = d[0];
      vec[3 * e + 1] = d[1];
      vec[3 * e + 2] = d[2];
    }
  }
  if (ne != capacity)
    error->one(FLERR, "pair_style taafs: internal error: expected {} edges in atoms {}..{}, got {}",
               n_edges, begin, end - 1, ne);
}

/* ----------------------------------------------------------------------
   The model's per-atom energies e[n_local] and gradients g[3 * n_edges] must be finite: NaN or
   inf would otherwise go silently into the thermo output, or into the positions under fix nve.
------------------------------------------------------------------------- */

void PairTaafs::check_model_output(const std::string &path, const double *e, int64_t n_local,
                                   const double *g, int64_t n_edges)
{
  const PairTaafsData &D = *d_;
  const tagint *tag = atom->tag;
  const int64_t c = first_nonfinite(e, n_local);
  if (c >= 0) {
    const tagint i = tag[D.atom_of_node[c]];
    error->one(FLERR,
               "pair_style taafs: {}: model returned a non-finite energy ({} eV) for atom {} at "
               "step {}: expected finite energies; the model file is broken (export it again) or "
               "the structure around atom {} is outside what it can handle",
               path, unsigned_nan(e[c]), i, update->ntimestep, i);
  }
  if (!g) return;
  const int64_t k = first_nonfinite(g, 3 * n_edges);
  if (k >= 0) {
    const int64_t *src = D.edge_index.data();
    const int64_t *dst = src + n_edges;
    const tagint i = tag[D.atom_of_node[src[k / 3]]], j = tag[D.atom_of_node[dst[k / 3]]];
    error->one(FLERR,
               "pair_style taafs: {}: model returned a non-finite force ({} eV/Å) between atoms "
               "{} and {} at step {}: expected finite forces; the model file is broken (export "
               "it again) or the structure around atom {} is outside what it can handle",
               path, unsigned_nan(g[k]), i, j, update->ntimestep, i);
  }
}

/* ---------------------------------------------------------------------- */

void PairTaafs::run_model(int k, int64_t n_local, int64_t n_edges)
{
  PairTaafsData &D = *d_;
  TaafsModel &model = k == 0 ? *D.model : *D.members[k - 1];
  const std::string &path = k == 0 ? D.model_path : D.member_paths[k - 1];
  int64_t *src = D.edge_index.data();
  double *vec = D.edge_vectors.data();
  const int64_t n_nodes = static_cast<int64_t>(D.atom_of_node.size());

  const torch::Device &device = model.device();
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // from_blob: the buffers outlive every use of these tensors within this call
  torch::Tensor species_t = torch::from_blob(D.species.data(), {n_nodes}, i64).to(device);
  torch::Tensor edge_index_t = torch::from_blob(src, {2, n_edges}, i64).to(device);
  torch::Tensor edge_vectors_t = torch::from_blob(vec, {n_edges, 3}, f64).to(device);
  if (!edge_vectors_t.is_leaf() || edge_vectors_t.data_ptr() == vec)
    edge_vectors_t = edge_vectors_t.detach();
  edge_vectors_t.requires_grad_(true);

  torch::Tensor energies, grad;
  try {
    energies = model.atom_energies(species_t, edge_index_t, edge_vectors_t, n_local);
    auto grads = torch::autograd::grad({energies.sum()}, {edge_vectors_t}, {},
                                       /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
    grad = grads[0];
  } catch (const TaafsModelError &e) {    // the output breaks the ABI
    error->one(FLERR, "pair_style taafs: {}: {}", path, e.what());
  } catch (const std::exception &e) {
    error->one(FLERR,
               "pair_style taafs: {}: the model failed on {} atoms and {} edges at step {}: {}; "
               "fix the model and export it again",
               path, n_local, n_edges, update->ntimestep, TaafsModel::error_line(e));
  }
  torch::NoGradGuard no_grad;
  D.energies = energies.detach().to(torch::kCPU).contiguous();
  const bool have_grad = grad.defined() && n_edges > 0;
  D.grad = have_grad ? grad.to(torch::kCPU).contiguous() : torch::Tensor();
  check_model_output(path, D.energies.data_ptr<double>(), n_local,
                     have_grad ? D.grad.data_ptr<double>() : nullptr, n_edges);
}

/* ---------------------------------------------------------------------- */

void PairTaafs::compute_chunk(int64_t begin, int64_t end, int64_t n_edges, double *w)
{
  double **f = atom->f;
  PairTaafsData &D = *d_;
  const int64_t n_local = end - begin;
  fill_chunk(begin, end, n_edges);
  run_model(0, n_local, n_edges);
  const int64_t *src = D.edge_index.data();
  const int64_t *dst = src + n_edges;
  const double *vec = D.edge_vectors.data();
  const double *e_atom = D.energies.data_ptr<double>();
  const double *g = D.grad.defined() ? D.grad.data_ptr<double>() : nullptr;

  if (eflag_global) eng_vdwl += D.energies.sum().item<double>();
  if (eflag_atom)
    for (int64_t c = 0; c < n_local; c++) eatom[D.atom_of_node[c]] += e_atom[c];

  if (g) {
    const int *atom_of_node = D.atom_of_node.data();
    for (int64_t e = 0; e < n_edges; e++) {
      const int i = atom_of_node[src[e]];
      const int j = atom_of_node[dst[e]];
      const double gx = g[3 * e], gy = g[3 * e + 1], gz = g[3 * e + 2];
      f[i][0] += gx;
      f[i][1] += gy;
      f[i][2] += gz;
      f[j][0] -= gx;
      f[j][1] -= gy;
      f[j][2] -= gz;
      if (vflag_either) {
        const double rx = vec[3 * e], ry = vec[3 * e + 1], rz = vec[3 * e + 2];
        const double v[6] = {-rx * gx, -ry * gy, -rz * gz, -rx * gy, -rx * gz, -ry * gz};
        if (vflag_global)
          for (int k = 0; k < 6; k++) w[k] += v[k];
        if (vflag_atom)
          for (int k = 0; k < 6; k++) {
            vatom[i][k] += 0.5 * v[k];
            vatom[j][k] += 0.5 * v[k];
          }
      }
    }
  }
  if (devi_step_)    // the same chunk through every model: the committee sees the same inputs
    for (int k = 0; k < n_models(); k++) {
      if (k > 0) run_model(k, n_local, n_edges);
      record_member(k, n_local, n_edges);
    }
  for (const int a : D.atom_of_node) D.node_of_atom[a] = -1;    // ready for the next chunk
}

/* ----------------------------------------------------------------------
   Entry point of taafs_impl.so, called by the registration shim (taafs_plugin.cpp).
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) void *taafs_create(void *lmp)
{
  return new PairTaafs(static_cast<LAMMPS *>(lmp));
}
