/* -*- c++ -*- ----------------------------------------------------------
   TaafsModel: the one place that loads and runs an mdval model file (ABI v1).

   Everything the pair style needs from a model goes through this small class, so that an
   AOTInductor (.pt2) back end can later be added here without touching pair_taafs.cpp.
   Errors are thrown as TaafsModelError with a message that names expected and given values.
------------------------------------------------------------------------- */

#ifndef LMP_TAAFS_MODEL_H
#define LMP_TAAFS_MODEL_H

#include <torch/script.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace LAMMPS_NS {

constexpr int TAAFS_ABI_VERSION = 1;                      // model-file ABI this build serves
constexpr const char *TAAFS_METADATA_FILE = "mdval.json";  // extra file holding the metadata

struct TaafsModelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TaafsModelInfo {
  int abi = -1;                        // model ABI version
  double cutoff = 0.0;                 // Å
  std::vector<std::string> type_names; // element symbols, species-index order
  std::string compute_dtype;           // "float64" | "float32"
  std::string architecture, activation, optimizer, mdval_version;
};

class TaafsModel {
 public:
  // Load `path` onto `device`, check the metadata and freeze the module for inference.
  TaafsModel(const std::string &path, const torch::Device &device);

  const TaafsModelInfo &info() const { return info_; }
  const torch::Device &device() const { return device_; }

  // forward(species[n_nodes] int64, edge_index[2,n_edges] int64, edge_vectors[n_edges,3] f64,
  //         n_local) -> per-atom energies [n_local] float64 (eV).  Autograd stays on.  Throws
  // TaafsModelError when the output breaks the ABI (not a tensor, wrong shape or dtype).
  torch::Tensor atom_energies(const torch::Tensor &species, const torch::Tensor &edge_index,
                              const torch::Tensor &edge_vectors, int64_t n_local);

  // The one line of a torch exception that says what went wrong, without the C++ backtrace of
  // a c10::Error or the TorchScript traceback before the interpreter's "XError: ..." line.
  static std::string error_line(const std::exception &e);

  // Pick the device for a request "auto" | "cpu" | "cuda" | "cuda:N"; `local_rank` is the
  // node-local MPI rank, used modulo the visible CUDA device count.
  static torch::Device choose_device(const std::string &request, int local_rank);

 private:
  // Refuse metadata type_names that differ from those the network declares (mdval's models do).
  void check_declared_type_names(const std::string &path) const;

  torch::jit::Module module_;
  TaafsModelInfo info_;
  torch::Device device_;
};

// Scope guard that drops torch's TorchScript deprecation warnings (we use TorchScript on
// purpose) and passes every other warning on to the previous handler.
class TaafsQuietTorchScript {
 public:
  TaafsQuietTorchScript();
  ~TaafsQuietTorchScript();

 private:
  struct Handler;
  Handler *handler_;
  c10::WarningHandler *previous_;
};

}    // namespace LAMMPS_NS

#endif
