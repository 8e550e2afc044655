/* -*- c++ -*- ----------------------------------------------------------
   pair_style taafs: neural-network force fields exported by mdval as TorchScript (model ABI v1,
   see mdval/abi.py and DESIGN.md section 3).

   This header is free of libtorch: everything torch lives behind the private pointer `d_`
   (PairTaafsData, defined in pair_taafs.cpp), so LAMMPS code including it needs no torch headers.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_TAAFS_H
#define LMP_PAIR_TAAFS_H

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairTaafsData;

class PairTaafs : public Pair {
 public:
  PairTaafs(class LAMMPS *);
  ~PairTaafs() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

 protected:
  virtual void allocate();

  std::unique_ptr<PairTaafsData> d_;    // libtorch state: model, device, reusable buffers
  std::string device_request_;          // "auto" | "cpu" | "cuda" | "cuda:N"
  int nthreads_;                        // torch intra-op threads per MPI rank
  double cutoff_;                       // model cutoff, Å (from the model file)
  std::vector<int> species_of_type_;    // [ntypes+1] model species index of each type, -1 = NULL
};

}    // namespace LAMMPS_NS

#endif
