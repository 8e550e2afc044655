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

// The ABI's names of torch dtypes (float64, int64, ...), as Python's torch prints them.
std::string dtype_name(c10::ScalarType t)
{
  switch (t) {
    case c10::ScalarType::Double: return "float64";
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Long: return "int64";
    case c10::ScalarType::Int: return "int32";
    case c10::ScalarType::Short: return "int16";
    case c10::ScalarType::Char: return "int8";
    case c10::ScalarType::Byte: return "uint8";
    case c10::ScalarType::Bool: return "bool";
    case c10::ScalarType::ComplexFloat: return "complex64";
    case c10::ScalarType::ComplexDouble: return "complex128";
    default: return c10::toString(t);
  }
}

// The Python type name (type(x).__name__) of a non-tensor forward() output.
std::string python_type_name(const torch::jit::IValue &v)
{
  if (v.isTuple()) return "tuple";
  if (v.isList()) return "list";
  if (v.isGenericDict()) return "dict";
  if (v.isInt()) return "int";
  if (v.isDouble()) return "float";
  if (v.isBool()) return "bool";
  if (v.isString()) return "str";
  if (v.isNone()) return "NoneType";
  return v.tagKind();
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
  check_declared_type_names(path);

  // Not frozen, and run without the profiling graph executor (see atom_energies). Measured on
  // DeepPot-SE [25,50,100]/[240,240,240] with 864 Cu atoms, one thread: the plain interpreter
  // is as fast as eager PyTorch and as the profiling executor, while torch::jit::freeze made
  // TAAFS models 2.1x slower (4.2 s vs 2.0 s per call) and gained nothing for tanh.
  module_.eval();
}

// mdval's networks keep the element names they were built with (type_names, inside the float32
// wrapper as model.type_names). Species index k is served as type_names[k] of the metadata, so
// edited or wrongly written metadata would evaluate one element with another's weights: refuse
// it, worded as mdval.deploy.model_file.check_network_species words it. Other modules that keep
// the ABI declare nothing and are served as their metadata says.
void TaafsModel::check_declared_type_names(const std::string &path) const
{
  torch::jit::Module network = module_;
  if (!network.hasattr("type_names") && network.hasattr("model") && network.attr("model").isModule())
    network = network.attr("model").toModule();
  if (!network.hasattr("type_names") || !network.attr("type_names").isList()) return;
  std::vector<std::string> declared;
  for (const torch::jit::IValue &name : network.attr("type_names").toListRef()) {
    if (!name.isString()) return;
    declared.push_back(name.toStringRef());
  }
  if (declared == info_.type_names) return;
  auto show = [](const std::vector<std::string> &names) {
    std::string text = "[";
    for (size_t k = 0; k < names.size(); ++k) text += (k ? ", '" : "'") + names[k] + "'";
    return text + "]";
  };
  throw TaafsModelError(cat(path, ": metadata type_names ", show(info_.type_names),
                            " do not match the type_names the network was built with, ",
                            show(declared),
                            "; the metadata was edited or written wrongly: re-export the model "
                            "with `mdval export CHECKPOINT`"));
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
  const torch::jit::IValue output = module_.forward(inputs);
  // Worded as mdval.abi.energies_contract_error words it, so that lmp, the ASE calculator and
  // `mdval test` name a broken output the same way.
  const std::string expected =
      cat("expected [", n_local, "] (one per local atom, ABI ", TAAFS_ABI_VERSION, ")");
  const std::string fix = "; forward() must return one float64 energy (eV) per local atom: fix "
                          "the model and export it again";
  if (!output.isTensor())
    throw TaafsModelError(cat("model returned a ", python_type_name(output),
                              " instead of a tensor of energies: ", expected, fix));
  torch::Tensor energies = output.toTensor();
  if (energies.dim() != 1 || energies.size(0) != n_local)
    throw TaafsModelError(
        cat("model returned energies of shape ", energies.sizes(), ": ", expected, fix));
  // No silent cast: a float32 or integer output has lost the precision the ABI promises.
  if (energies.scalar_type() != torch::kFloat64)
    throw TaafsModelError(cat("model returned energies of dtype ",
                              dtype_name(energies.scalar_type()), ": expected float64 (one per "
                              "local atom, ABI ", TAAFS_ABI_VERSION, ")", fix));
  return energies;
}

std::string TaafsModel::error_line(const std::exception &e)
{
  const auto *c10_error = dynamic_cast<const c10::Error *>(&e);
  const std::string msg = c10_error ? c10_error->what_without_backtrace() : e.what();
  std::vector<std::string> lines;
  std::istringstream in(msg);
  for (std::string line; std::getline(in, line);) {
    const size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos)
      lines.push_back(line.substr(first, line.find_last_not_of(" \t\r") + 1 - first));
  }
  if (lines.empty()) return "unknown error";
  if (msg.find("Traceback of TorchScript") == std::string::npos) return lines.front();
  // the exception the scripted code raised, e.g. "builtins.ValueError: ..." -> "ValueError: ..."
  const std::string prefix = "builtins.";
  const std::string &last = lines.back();
  return last.compare(0, prefix.size(), prefix) == 0 ? last.substr(prefix.size()) : last;
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
