/* ----------------------------------------------------------------------
   pair_style taafs ... committee m2.pt [m3.pt ...] [out_freq N] [out_file FILE] [atomic]
                        [relative EPS] [relative_v EPS]

   A committee of K models: the pair_coeff model (model 0) drives the dynamics on every step;
   the members after the keyword committee are evaluated only on deviation steps (multiples of
   out_freq, and steps where fix pair asks for the per-atom deviations), on the same chunks and
   edges as model 0, so the cost between those steps is that of one model.  On a deviation step
   (DeePMD-kit's model deviation, in its model_devi.out format so that DP-GEN and other tools
   read the file):
       force deviation of atom i   s_i = sqrt((1/K) sum_k |F_i^k - <F_i>|^2)            eV/Å
       virial deviation, per component ab of the per-atom virial W_ab / N:
                                   sqrt((1/K) sum_k (W^k_ab/N - <W_ab/N>)^2)            eV/atom
   with N the atoms the model sees (not NULL).  A line holds the step, the max, min and RMS of
   the 9 virial deviations, and the max, min and mean of s_i; with `atomic`, s_i of every atom
   in atom-ID order (0 for NULL atoms).  relative EPS divides s_i by |<F_i>| + EPS, relative_v
   EPS each virial deviation by |<W_ab/N>| + EPS, as DeePMD-kit's keywords of the same names.
   Each variance is (1/K^2) sum_{k<l} (x_k - x_l)^2, the same number but exactly 0 for identical
   members; mdval.deploy.committee computes it the same way for ASE.
   MPI: member forces on ghosts are reverse-communicated to their owners (one exchange for all
   members), the maxima and minima go to rank 0 in one MPI_MAX reduction, the sums and virials
   in one MPI_SUM reduction, the per-atom columns by a gather of (ID, s_i) per rank.
   Also: fix pair reads s_i (model_devi_f) and the energy deviation (model_devi_e, eV) of each
   atom through extract_peratom(), and sets the trigger model_devi_f_flag; compute pair reads
   the six numbers of the last line as its vector (pvector, on rank 0, summed over ranks).
------------------------------------------------------------------------- */

#include "pair_taafs.h"
#include "pair_taafs_data.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "memory.h"
#include "update.h"
#include "utils.h"

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

using namespace LAMMPS_NS;

namespace {

bool is_committee_keyword(const std::string &key)
{
  return key == "committee" || key == "out_freq" || key == "out_file" || key == "atomic" ||
      key == "relative" || key == "relative_v";
}

// (1/K) sum_k |x_k - <x>|^2 of K vectors of n numbers at x[k * stride], from the differences of
// pairs: exactly 0 when the K vectors are equal.
double member_variance(const double *x, int n_models, int n, int stride)
{
  double sum = 0.0;
  for (int a = 0; a < n_models; a++)
    for (int b = a + 1; b < n_models; b++)
      for (int d = 0; d < n; d++) {
        const double diff = x[a * stride + d] - x[b * stride + d];
        sum += diff * diff;
      }
  return sum / (static_cast<double>(n_models) * n_models);
}

// |<x>| of K vectors of n numbers at x[k * stride]
double mean_norm(const double *x, int n_models, int n, int stride)
{
  double sq = 0.0;
  for (int d = 0; d < n; d++) {
    double mean = 0.0;
    for (int k = 0; k < n_models; k++) mean += x[k * stride + d];
    mean /= n_models;
    sq += mean * mean;
  }
  return std::sqrt(sq);
}

}    // namespace

/* ----------------------------------------------------------------------
   settings(): the committee keywords.  Returns the number of arguments consumed at arg[iarg],
   0 when arg[iarg] is not one of them.
------------------------------------------------------------------------- */

int PairTaafs::committee_keyword(int iarg, int narg, char **arg)
{
  const std::string key = arg[iarg];
  if (!is_committee_keyword(key)) return 0;
  if (key == "atomic") {
    devi_atomic_ = true;
    return 1;
  }
  if (key == "committee") {
    int n = 1;
    while (iarg + n < narg && !is_committee_keyword(arg[iarg + n]) &&
           strcmp(arg[iarg + n], "device") != 0 && strcmp(arg[iarg + n], "threads") != 0 &&
           strcmp(arg[iarg + n], "chunk") != 0)
      committee_paths_.emplace_back(arg[iarg + n++]);
    if (n == 1)
      error->all(FLERR,
                 "pair_style taafs: expected one or more model files after committee (the "
                 "members besides the pair_coeff model), got none");
    return n;
  }
  if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style taafs " + key, error);
  const std::string value = arg[iarg + 1];
  if (key == "out_freq") {
    devi_out_freq_ = utils::is_integer(value) ? utils::bnumeric(FLERR, value, false, lmp) : -1;
    if (devi_out_freq_ < 0)
      error->all(FLERR,
                 "pair_style taafs: expected out_freq >= 0 (steps between model deviation "
                 "lines, 0 for none), got '{}'",
                 value);
  } else if (key == "out_file") {
    devi_out_file_ = value;
  } else {    // relative, relative_v
    const double eps = utils::is_double(value) ? utils::numeric(FLERR, value, false, lmp) : -1.0;
    if (!(eps > 0.0))
      error->all(FLERR, "pair_style taafs: expected {} EPS > 0 ({}), got '{}'", key,
                 key == "relative" ? "eV/Å" : "eV/atom", value);
    (key == "relative" ? devi_relative_f_ : devi_relative_v_) = eps;
  }
  return 2;
}

// After the keyword loop: the output keywords need a committee.  Sizes the reverse
// communication (3 force components per model) and the vector compute pair reads.
void PairTaafs::check_committee_settings(bool output_keywords)
{
  if (committee_paths_.empty() && output_keywords)
    error->all(FLERR,
               "pair_style taafs: out_freq, out_file, atomic, relative and relative_v need a "
               "committee: expected committee m2.pt [m3.pt ...] among the keywords");
  comm_reverse = committee_paths_.empty() ? 0 : 3 * n_models();
  nextra = committee_paths_.empty() ? 0 : N_DEVI_COLUMNS;
  std::fill(pvector, pvector + N_DEVI_COLUMNS, 0.0);
}

int PairTaafs::n_models() const
{
  return 1 + static_cast<int>(committee_paths_.size());
}

/* ----------------------------------------------------------------------
   pair_coeff, on every rank: load the members onto the device of the pair_coeff model (loaded
   just before), which they must agree with.  "" on success, else the error.
------------------------------------------------------------------------- */

std::string PairTaafs::load_committee(const std::string &driving_path)
{
  PairTaafsData &D = *d_;
  D.members.clear();
  D.member_paths.clear();
  const TaafsModelInfo &first = D.model->info();
  auto names = [](const std::vector<std::string> &v) {
    std::string text;
    for (const auto &name : v) text += (text.empty() ? "" : " ") + name;
    return "[" + text + "]";
  };
  for (const std::string &path : committee_paths_) {
    std::unique_ptr<TaafsModel> member;
    try {
      member = std::make_unique<TaafsModel>(path, D.model->device());
    } catch (const std::exception &e) {
      return std::string("pair_style taafs committee: ") + e.what();
    }
    // the abi agrees already: TaafsModel refuses any abi but TAAFS_ABI_VERSION, for every member
    const TaafsModelInfo &info = member->info();
    std::string key, got, want;
    if (info.cutoff != first.cutoff) {
      key = "cutoff", got = fmt::format("{} Å", info.cutoff), want = fmt::format("{} Å", first.cutoff);
    } else if (info.type_names != first.type_names) {
      key = "type_names", got = names(info.type_names), want = names(first.type_names);
    }
    if (!key.empty())
      return fmt::format("pair_style taafs committee: model '{}' has {} {}, the pair_coeff model "
                         "'{}' has {}: every committee member must have the same cutoff, "
                         "type_names and abi (train them with the same [model] settings)",
                         path, key, got, driving_path, want);
    D.members.push_back(std::move(member));
  }
  D.member_paths = committee_paths_;
  return "";
}

void PairTaafs::log_committee() const
{
  if (committee_paths_.empty() || comm->me != 0) return;
  std::string members;
  for (const auto &path : committee_paths_) members += " " + path;
  const std::string output = devi_out_freq_ > 0
      ? fmt::format("model deviation every {} steps into {}{}", devi_out_freq_, devi_out_file_,
                    devi_atomic_ ? " (with per-atom force deviations)" : "")
      : std::string("no model deviation file (out_freq 0)");
  utils::logmesg(lmp, "pair_style taafs: committee of {} models, the pair_coeff model drives, "
                 "members{} evaluated on deviation steps only; {}\n",
                 n_models(), members, output);
}

/* ----------------------------------------------------------------------
   init_style(): open the model_devi file once (later runs append to it) and allocate the
   per-atom arrays, so that fix pair can read them from its first step.
------------------------------------------------------------------------- */

void PairTaafs::init_committee()
{
  // pair_style taafs given again (same style: LAMMPS keeps the pair_coeff) with other members
  if (committee_paths_ != d_->member_paths)
    error->all(FLERR,
               "pair_style taafs: the committee changed after pair_coeff: expected a pair_coeff "
               "line after the pair_style line that names the committee");
  if (n_models() < 2) return;
  grow_devi_arrays();
  if (comm->me == 0 && devi_out_freq_ > 0 && !devi_fp_) {
    devi_fp_ = fopen(devi_out_file_.c_str(), "w");
    if (!devi_fp_)
      error->one(FLERR, "pair_style taafs: cannot open out_file '{}' for writing: {}",
                 devi_out_file_, utils::getsyserror());
    utils::print(devi_fp_, "#{:>11}", "step");
    for (const char *name :
         {"max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f"})
      utils::print(devi_fp_, "{:>19}", name);
    if (devi_atomic_) utils::print(devi_fp_, "{:>19}", "atm_devi_f(N)");
    utils::print(devi_fp_, "\n");
    fflush(devi_fp_);
  }
}

void PairTaafs::grow_devi_arrays()
{
  if (atom->nmax <= devi_nmax_) return;
  devi_nmax_ = atom->nmax;
  memory->grow(devi_f_atom_, devi_nmax_, "pair:devi_f_atom");
  memory->grow(devi_e_atom_, devi_nmax_, "pair:devi_e_atom");
  std::fill(devi_f_atom_, devi_f_atom_ + devi_nmax_, 0.0);
  std::fill(devi_e_atom_, devi_e_atom_ + devi_nmax_, 0.0);
}

void PairTaafs::close_devi_file()
{
  if (devi_fp_) fclose(devi_fp_);
  devi_fp_ = nullptr;
}

/* ----------------------------------------------------------------------
   compute() on a deviation step: zeroed buffers, then each chunk's results of every model
------------------------------------------------------------------------- */

void PairTaafs::begin_deviation_step()
{
  PairTaafsData &D = *d_;
  const size_t K = n_models();
  const size_t nall = static_cast<size_t>(atom->nlocal) + atom->nghost;
  D.member_forces.assign(nall * K * 3, 0.0);
  D.member_energies.assign(static_cast<size_t>(atom->nlocal) * K, 0.0);
  D.member_virial.assign(K * 9, 0.0);
}

void PairTaafs::record_member(int k, int64_t n_local, int64_t n_edges)
{
  PairTaafsData &D = *d_;
  const int K = n_models();
  const double *e = D.energies.data_ptr<double>();
  for (int64_t c = 0; c < n_local; c++) D.member_energies[D.atom_of_node[c] * K + k] = e[c];
  if (!D.grad.defined()) return;
  const double *g = D.grad.data_ptr<double>();
  const int64_t *src = D.edge_index.data();
  const int64_t *dst = src + n_edges;
  const double *vec = D.edge_vectors.data();
  double *force = D.member_forces.data();
  double *w = D.member_virial.data() + 9 * k;
  for (int64_t e = 0; e < n_edges; e++) {
    double *fi = force + (static_cast<size_t>(D.atom_of_node[src[e]]) * K + k) * 3;
    double *fj = force + (static_cast<size_t>(D.atom_of_node[dst[e]]) * K + k) * 3;
    for (int a = 0; a < 3; a++) {
      fi[a] += g[3 * e + a];
      fj[a] -= g[3 * e + a];
      for (int b = 0; b < 3; b++) w[3 * a + b] -= vec[3 * e + a] * g[3 * e + b];
    }
  }
}

/* ----------------------------------------------------------------------
   The deviations of this step (see the top of the file), on every rank.
------------------------------------------------------------------------- */

void PairTaafs::finish_deviation_step()
{
  PairTaafsData &D = *d_;
  const int K = n_models();
  const int nlocal = atom->nlocal;
  comm->reverse_comm(this);    // every member's ghost forces onto their owners
  grow_devi_arrays();

  // per atom, and this rank's max, min (as -min, for one MPI_MAX) and sum over its model atoms
  double extremes[2] = {0.0, -std::numeric_limits<double>::infinity()};
  std::vector<double> sums(2 + 9 * K, 0.0);    // sum of s_i, model atoms, member virials
  for (int i = 0; i < nlocal; i++) {
    devi_f_atom_[i] = devi_e_atom_[i] = 0.0;
    if (species_of_type_[atom->type[i]] < 0) continue;    // NULL: not this style's atom
    const double *fi = D.member_forces.data() + static_cast<size_t>(i) * K * 3;
    double s = std::sqrt(member_variance(fi, K, 3, 3));
    if (devi_relative_f_ > 0.0) s /= mean_norm(fi, K, 3, 3) + devi_relative_f_;
    devi_f_atom_[i] = s;
    devi_e_atom_[i] = std::sqrt(member_variance(&D.member_energies[static_cast<size_t>(i) * K], K, 1, 1));
    extremes[0] = std::max(extremes[0], s);
    extremes[1] = std::max(extremes[1], -s);
    sums[0] += s;
    sums[1] += 1.0;
  }
  std::copy(D.member_virial.begin(), D.member_virial.end(), sums.begin() + 2);
  double all_extremes[2];
  std::vector<double> all_sums(sums.size());
  MPI_Reduce(extremes, all_extremes, 2, MPI_DOUBLE, MPI_MAX, 0, world);
  MPI_Reduce(sums.data(), all_sums.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, 0,
             world);

  double row[N_DEVI_COLUMNS] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const double n_atoms = all_sums[1];
  if (comm->me == 0 && n_atoms > 0) {
    std::vector<double> per_atom(9 * K);    // W_ab / N of each member
    for (int m = 0; m < 9 * K; m++) per_atom[m] = all_sums[2 + m] / n_atoms;
    double vmax = 0.0, vmin = std::numeric_limits<double>::infinity(), vsq = 0.0;
    for (int ab = 0; ab < 9; ab++) {
      double dv = std::sqrt(member_variance(per_atom.data() + ab, K, 1, 9));
      if (devi_relative_v_ > 0.0) dv /= mean_norm(per_atom.data() + ab, K, 1, 9) + devi_relative_v_;
      vmax = std::max(vmax, dv);
      vmin = std::min(vmin, dv);
      vsq += dv * dv;
    }
    const double f_row[3] = {all_extremes[0], -all_extremes[1], all_sums[0] / n_atoms};
    const double v_row[3] = {vmax, vmin, std::sqrt(vsq / 9.0)};
    std::copy(v_row, v_row + 3, row);
    std::copy(f_row, f_row + 3, row + 3);
  }
  std::copy(row, row + N_DEVI_COLUMNS, pvector);    // 0 on other ranks: compute pair sums

  const bool write_line = devi_out_freq_ > 0 && update->ntimestep % devi_out_freq_ == 0;
  if (write_line && comm->me == 0) {
    utils::print(devi_fp_, "{:>12}", update->ntimestep);
    for (const double value : row) utils::print(devi_fp_, " {:>18.6e}", value);
  }
  if (write_line && devi_atomic_) write_atomic_deviation();
  if (write_line && comm->me == 0) {
    utils::print(devi_fp_, "\n");
    fflush(devi_fp_);
  }
}

// The `atomic` columns: s_i of every atom, gathered on rank 0 and written in atom-ID order
// (IDs need not be consecutive).
void PairTaafs::write_atomic_deviation()
{
  const int nlocal = atom->nlocal, nprocs = comm->nprocs;
  std::vector<int> counts(nprocs), displs(nprocs, 0);
  MPI_Gather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  const int total = comm->me == 0 ? std::accumulate(counts.begin(), counts.end(), 0) : 0;
  for (int r = 1; r < nprocs; r++) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<tagint> tags(total);
  std::vector<double> values(total);
  MPI_Gatherv(atom->tag, nlocal, MPI_LMP_TAGINT, tags.data(), counts.data(), displs.data(),
              MPI_LMP_TAGINT, 0, world);
  MPI_Gatherv(devi_f_atom_, nlocal, MPI_DOUBLE, values.data(), counts.data(), displs.data(),
              MPI_DOUBLE, 0, world);
  if (comm->me != 0) return;
  std::vector<int> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&tags](int a, int b) { return tags[a] < tags[b]; });
  for (const int k : order) utils::print(devi_fp_, " {:>18.6e}", values[k]);
}

/* ----------------------------------------------------------------------
   reverse communication of the member forces: 3 numbers per model and atom
------------------------------------------------------------------------- */

int PairTaafs::pack_reverse_comm(int n, int first, double *buf)
{
  const int per_atom = 3 * n_models();
  const double *src = d_->member_forces.data() + static_cast<size_t>(first) * per_atom;
  std::copy(src, src + static_cast<size_t>(n) * per_atom, buf);
  return n * per_atom;
}

void PairTaafs::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int per_atom = 3 * n_models();
  double *force = d_->member_forces.data();
  for (int i = 0; i < n; i++)
    for (int c = 0; c < per_atom; c++) force[static_cast<size_t>(list[i]) * per_atom + c] += *buf++;
}

/* ----------------------------------------------------------------------
   fix pair: `fix ID all pair N taafs model_devi_f 1 [model_devi_e 0]` sets the trigger every N
   steps, so the committee is evaluated on those steps too, and reads the per-atom values
------------------------------------------------------------------------- */

void *PairTaafs::extract(const char *name, int &dim)
{
  dim = 0;
  if (n_models() > 1 &&
      (strcmp(name, "model_devi_f_flag") == 0 || strcmp(name, "model_devi_e_flag") == 0))
    return &devi_trigger_;
  return nullptr;
}

void *PairTaafs::extract_peratom(const char *name, int &ncol)
{
  ncol = 0;
  if (n_models() < 2) return nullptr;
  if (strcmp(name, "model_devi_f") == 0) return devi_f_atom_;
  if (strcmp(name, "model_devi_e") == 0) return devi_e_atom_;
  return nullptr;
}
