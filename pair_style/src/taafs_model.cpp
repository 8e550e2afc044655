/* ----------------------------------------------------------------------
   TaafsModel: load, check and run an mdval TorchScript model (ABI v1).
------------------------------------------------------------------------- */

#include "taafs_model.h"

#include "json.h"    // LAMMPS' bundled nlohmann json (header only)

#include <torch/cuda.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <fstream>
#include <sstream>
#include <mutex>

using namespace LAMMPS_NS;

namespace {

// Concatenate anything streamable into one message (no fmt here: keeps libtorch's and LAMMPS'
// bundled fmt copies apart).
template <typename... Args> std::string cat(const Args &...args)
{
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::string first_line(const std::string &s)
{
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

}    // namespace

/* ---------------------------------------------------------------------- */

struct TaafsQuietTorchScript::Handler : c10::WarningHandler {
  c10::WarningHandler *next = nullptr;
  void process(const c10::Warning &warning) override
  {
    const std::string &msg = warning.msg();
    if (msg.find("TorchScript") != std::string::npos ||
        msg.find("torch.jit") != std::string::npos ||
        msg.find("deprecat") != std::string::npos)
      return;
    if (next) next->process(warning);
  }
};

TaafsQuietTorchScript::TaafsQuietTorchScript() : handler_(new Handler)
{
  previous_ = c10::WarningUtils::get_warning_handler();
  handler_->next = previous_;
  c10::WarningUtils::set_warning_handler(handler_);
}

TaafsQuietTorchScript::~TaafsQuietTorchScript()
{
  c10::WarningUtils::set_warning_handler(previous_);
  delete handler_;
}

/* ---------------------------------------------------------------------- */

TaafsModel::TaafsModel(const std::string &path, const torch::Device &device) : device_(device)
{
  {
    std::ifstream probe(path);
    if (!probe.good())
      throw TaafsModelError(cat("cannot open model file '", path,
                                "': expected a TorchScript file exported by mdval (check the "
                                "path in pair_coeff)"));
  }

  TaafsQuietTorchScript quiet;

  torch::jit::ExtraFilesMap extra{{TAAFS_METADATA_FILE, ""}};
  try {
    module_ = torch::jit::load(path, device_, extra);
  } catch (const std::exception &e) {
    throw TaafsModelError(cat("cannot read model file '", path,
                              "': expected a TorchScript file exported by mdval, got a corrupt "
                              "or foreign file (",
                              first_line(e.what()), ")"));
  }

  const std::string &meta = extra[TAAFS_METADATA_FILE];
  if (meta.empty())
    throw TaafsModelError(cat("model file '", path, "' has no '", TAAFS_METADATA_FILE,
                              "' metadata: expected an mdval model (ABI ", TAAFS_ABI_VERSION,
                              "), got a TorchScript file without it"));
  try {
    auto j = json::parse(meta);
    info_.abi = j.at("abi").get<int>();
    if (info_.abi != TAAFS_ABI_VERSION)
      throw TaafsModelError(cat("model file '", path, "' has the wrong ABI: expected abi ",
                                TAAFS_ABI_VERSION, ", got abi ", info_.abi,
                                " (re-export the model with an mdval that writes ABI ",
                                TAAFS_ABI_VERSION, ")"));
    info_.cutoff = j.at("cutoff").get<double>();
    info_.type_names = j.at("type_names").get<std::vector<std::string>>();
    info_.compute_dtype = j.value("compute_dtype", std::string("float64"));
    info_.architecture = j.value("architecture", std::string("?"));
    info_.activation = j.contains("activation") ? j["activation"].dump() : "?";
    info_.optimizer = j.value("optimizer", std::string("?"));
    info_.mdval_version = j.value("mdval_version", std::string("?"));
  } catch (const TaafsModelError &) {
    throw;
  } catch (const std::exception &e) {
    throw TaafsModelError(cat("model file '", path, "': bad '", TAAFS_METADATA_FILE,
                              "' metadata: expected keys abi, cutoff, type_names (",
                              first_line(e.what()), ")"));
  }
  if (!(info_.cutoff > 0.0))
    throw TaafsModelError(
        cat("model file '", path, "': expected a positive cutoff, got ", info_.cutoff));
  if (info_.type_names.empty())
    throw TaafsModelError(
        cat("model file '", path, "': expected at least one entry in type_names, got none"));

  // Not frozen, and run without the profiling graph executor (see atom_energies). Measured on
  // DeepPot-SE [25,50,100]/[240,240,240] with 864 Cu atoms, one thread: the plain interpreter
  // is as fast as eager PyTorch and as the profiling executor, while torch::jit::freeze made
  // TAAFS models 2.1x slower (4.2 s vs 2.0 s per call) and gained nothing for tanh.
  module_.eval();
}

torch::Tensor TaafsModel::atom_energies(const torch::Tensor &species,
                                        const torch::Tensor &edge_index,
                                        const torch::Tensor &edge_vectors, int64_t n_local)
{
  TaafsQuietTorchScript quiet;
  // The plain TorchScript interpreter, no profiling or specialisation: nothing re-profiles when
  // the numbers of atoms and edges change from step to step, and no specialised plan can drop
  // the gradient path (the profiling executor did, for a Behler-Parrinello model that had
  // first been called without gradients).
  torch::jit::GraphOptimizerEnabledGuard plain_interpreter(false);
  std::vector<torch::jit::IValue> inputs{species, edge_index, edge_vectors, n_local};
  torch::Tensor energies = module_.forward(inputs).toTensor();
  if (energies.dim() != 1 || energies.size(0) != n_local)
    throw TaafsModelError(cat("model returned energies of shape ", energies.sizes(),
                              ": expected [", n_local, "] (one per local atom, ABI ",
                              TAAFS_ABI_VERSION, ")"));
  if (energies.scalar_type() != torch::kFloat64) energies = energies.to(torch::kFloat64);
  return energies;
}

torch::Device TaafsModel::choose_device(const std::string &request, int local_rank)
{
  if (request == "cpu") return torch::Device(torch::kCPU);
  const bool have_cuda = torch::cuda::is_available();
  const int n_cuda = have_cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (request == "auto") {
    if (n_cuda == 0) return torch::Device(torch::kCPU);
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % n_cuda));
  }
  if (n_cuda == 0)
    throw TaafsModelError(cat("device ", request,
                              " requested: expected a CUDA build of torch with a visible GPU, "
                              "got 0 CUDA devices (use device cpu)"));
  if (request == "cuda")
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % n_cuda));
  const int index = std::stoi(request.substr(5));    // "cuda:N", checked by the caller
  if (index < 0 || index >= n_cuda)
    throw TaafsModelError(
        cat("device ", request, ": expected an index in 0..", n_cuda - 1, ", got ", index));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}
