/* ----------------------------------------------------------------------
   pair_style taafs: its input commands (pair_style keywords, pair_coeff) and init; the
   computation is in pair_taafs.cpp.
------------------------------------------------------------------------- */

#include "pair_taafs.h"
#include "pair_taafs_data.h"

#include <ATen/Parallel.h>

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <limits>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   pair_style taafs [device auto|cpu|cuda|cuda:N] [threads N] [chunk auto|off|N]
                    [committee m2.pt ... [out_freq N] [out_file FILE] [atomic]
                     [relative EPS] [relative_v EPS]]   (pair_taafs_committee.cpp)
------------------------------------------------------------------------- */

void PairTaafs::settings(int narg, char **arg)
{
  device_request_ = "auto";
  nthreads_ = 0;
  chunk_request_ = "auto";
  chunk_atoms_ = 0;
  chunk_edges_ = AUTO_CHUNK_EDGES;
  committee_paths_.clear();    // DeePMD-kit's defaults
  devi_out_freq_ = 100;
  devi_out_file_ = "model_devi.out";
  devi_atomic_ = false;
  devi_relative_f_ = devi_relative_v_ = -1.0;
  close_devi_file();    // the next run opens the (new) out_file afresh
  bool output_keywords = false;
  int iarg = 0;
  while (iarg < narg) {
    const std::string key = arg[iarg];
    if (key == "device") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style taafs device", error);
      const std::string value = arg[iarg + 1];
      bool ok = value == "auto" || value == "cpu" || value == "cuda";
      if (!ok && utils::strmatch(value, "^cuda:\\d+$")) ok = true;
      if (!ok)
        error->all(FLERR,
                   "pair_style taafs: expected device auto, cpu, cuda or cuda:N, got '{}'", value);
      device_request_ = value;
      iarg += 2;
    } else if (key == "threads") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style taafs threads", error);
      // utils::inumeric/bnumeric parse (and refuse out-of-range numbers, in LAMMPS' words)
      // once our own check has named the keyword for any other bad value
      const std::string value = arg[iarg + 1];
      nthreads_ = utils::is_integer(value) ? utils::inumeric(FLERR, value, false, lmp) : 0;
      if (nthreads_ < 1)
        error->all(FLERR, "pair_style taafs: expected threads >= 1, got '{}'", value);
      iarg += 2;
    } else if (key == "chunk") {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "pair_style taafs chunk", error);
      const std::string value = arg[iarg + 1];
      chunk_request_ = value;
      if (value == "auto") {
        chunk_atoms_ = 0;
        chunk_edges_ = AUTO_CHUNK_EDGES;
      } else if (value == "off") {
        chunk_atoms_ = 0;
        chunk_edges_ = 0;
      } else {
        const bigint n = utils::is_integer(value) ? utils::bnumeric(FLERR, value, false, lmp) : 0;
        if (n < 1)
          error->all(FLERR,
                     "pair_style taafs: expected chunk auto, off or a number of atoms >= 1 "
                     "(at most that many centre atoms per model call), got '{}'",
                     value);
        chunk_atoms_ = n;
        chunk_edges_ = 0;
        chunk_request_ = std::to_string(n);    // for the log: "+5" or "05" is chunk 5
      }
      iarg += 2;
    } else if (const int n = committee_keyword(iarg, narg, arg)) {
      output_keywords |= key != "committee";
      iarg += n;
    } else {
      error->all(FLERR,
                 "pair_style taafs: expected keyword device, threads, chunk, committee, "
                 "out_freq, out_file, atomic, relative or relative_v, got '{}'",
                 key);
    }
  }
  check_committee_settings(output_keywords);
}

std::string PairTaafs::chunk_description() const
{
  if (chunk_request_ == "auto")
    return "chunk auto: at most " + std::to_string(chunk_edges_) + " edges per model call";
  if (chunk_request_ == "off") return "chunk off: one model call per rank and step";
  return "chunk " + chunk_request_ + ": at most " + std::to_string(chunk_atoms_) +
      " atoms per model call";
}

/* ---------------------------------------------------------------------- */

void PairTaafs::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  map = new int[n + 1];    // filled by map_element2type(); Pair::~Pair frees it
  for (int i = 1; i <= n; i++)
    for (int j = i; j <= n; j++) setflag[i][j] = 0;
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt Elem1 Elem2 ... (one element name or NULL per atom type)
------------------------------------------------------------------------- */

namespace {

std::string joined(const std::vector<std::string> &names)
{
  std::string text;
  for (const auto &name : names) text += (text.empty() ? "" : " ") + name;
  return text;
}

// This rank's index among the ranks of its node: it picks the node's GPU.  Collective.
int node_rank(MPI_Comm world)
{
  int rank = 0;
  MPI_Comm node_comm;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_comm);
  MPI_Comm_rank(node_comm, &rank);
  MPI_Comm_free(&node_comm);
  return rank;
}

// What each rank found when it did a step alone ("" = success), agreed by all ranks: how many
// failed, and the message of the first that did.  Collective over `world`.
struct RankFailure {
  int n_failed = 0;
  int first = -1;
  std::string why;
};

RankFailure agree_on_failure(MPI_Comm world, int me, const std::string &why)
{
  RankFailure f;
  const int failed_here = why.empty() ? 0 : 1;
  MPI_Allreduce(&failed_here, &f.n_failed, 1, MPI_INT, MPI_SUM, world);
  if (f.n_failed == 0) return f;
  const int rank_if_failed = failed_here ? me : std::numeric_limits<int>::max();
  MPI_Allreduce(&rank_if_failed, &f.first, 1, MPI_INT, MPI_MIN, world);
  int length = me == f.first ? static_cast<int>(why.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, f.first, world);
  f.why = me == f.first ? why : std::string(length, ' ');
  MPI_Bcast(f.why.data(), length, MPI_CHAR, f.first, world);
  return f;
}

}    // namespace

void PairTaafs::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg < 3) utils::missing_cmd_args(FLERR, "pair_coeff taafs", error);
  // (LAMMPS itself refuses anything but `pair_coeff * *` for a one_coeff style)
  if (narg != 3 + ntypes)
    error->all(FLERR,
               "pair_coeff for taafs: expected {} element names (one per atom type, or NULL) "
               "after the model file, got {}",
               ntypes, narg - 3);
  bool any_element = false;
  for (int k = 3; k < narg; k++) any_element |= strcmp(arg[k], "NULL") != 0;
  if (!any_element)    // checked here: map_element2type() would say only "Incorrect args"
    error->all(FLERR, "pair_coeff for taafs: expected at least one element, got only NULL");
  map_element2type(ntypes, arg + 3);    // map[], elements[] and setflag[][]

  // every rank loads the model; all stop together, with the first failure's message, if any
  // rank failed (error->all on the failing ranks alone would leave the others waiting)
  const RankFailure f = agree_on_failure(world, comm->me, load_model(arg[2], node_rank(world)));
  if (f.n_failed == comm->nprocs) error->all(FLERR, "{}", f.why);
  if (f.n_failed > 0)
    error->all(FLERR,
               "{}; on MPI rank {} ({} of {} ranks failed, the others loaded the model): every "
               "rank must see the same model file and devices",
               f.why, f.first, f.n_failed, comm->nprocs);

  const TaafsModelInfo &info = d_->model->info();
  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style taafs: model {} (abi {}, {}, activation {}, cutoff {} Å, "
                   "elements {}) on {}\n",
                   arg[2], info.abi, info.architecture, info.activation, info.cutoff,
                   joined(info.type_names), d_->model->device().str());
  log_committee();
}

std::string PairTaafs::load_model(const std::string &path, int local_rank)
{
  d_->model.reset();    // a failed pair_coeff leaves no model (nor half a type map) behind
  std::unique_ptr<TaafsModel> model;
  try {
    const torch::Device device = TaafsModel::choose_device(device_request_, local_rank);
    model = std::make_unique<TaafsModel>(path, device);
  } catch (const std::exception &e) {
    return std::string("pair_style taafs: ") + e.what();
  }
  const TaafsModelInfo &info = model->info();
  std::vector<int> species_of_type(atom->ntypes + 1, -1);
  for (int t = 1; t <= atom->ntypes; t++) {
    if (map[t] < 0) continue;    // NULL
    const std::string name = elements[map[t]];
    auto it = std::find(info.type_names.begin(), info.type_names.end(), name);
    if (it == info.type_names.end())
      return "pair_coeff for taafs: element '" + name + "' (atom type " + std::to_string(t) +
          ") is not in model '" + path + "': expected one of " + joined(info.type_names) +
          " or NULL";
    species_of_type[t] = static_cast<int>(it - info.type_names.begin());
  }
  species_of_type_ = std::move(species_of_type);
  cutoff_ = info.cutoff;
  d_->model = std::move(model);
  d_->model_path = path;
  const std::string why = load_committee(path);
  if (!why.empty()) d_->model.reset();
  return why;
}

/* ---------------------------------------------------------------------- */

void PairTaafs::init_style()
{
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style taafs: expected units metal (eV, Å), got units {}",
               update->unit_style);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style taafs: expected newton pair on, got newton pair off");
  if (!d_->model) error->all(FLERR, "pair_style taafs: expected a pair_coeff * * model.pt line");

  if (chunk_request_ == "auto")    // the device is known now
    chunk_edges_ = d_->model->device().is_cuda() ? AUTO_CHUNK_EDGES_GPU : AUTO_CHUNK_EDGES;
  report_chunks_ = true;
  init_committee();
  const int nthreads = nthreads_ > 0 ? nthreads_ : std::max(1, comm->nthreads);
  at::set_num_threads(nthreads);

  neighbor->add_request(this, NeighConst::REQ_FULL);
}

/* ---------------------------------------------------------------------- */

double PairTaafs::init_one(int /*i*/, int /*j*/)
{
  return cutoff_;
}
