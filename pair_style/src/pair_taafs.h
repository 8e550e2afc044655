/* -*- c++ -*- ----------------------------------------------------------
   pair_style taafs: neural-network force fields exported by mdval as TorchScript (model ABI v1,
   see mdval/abi.py and DESIGN.md section 3).

   This header is free of libtorch: everything torch lives behind the private pointer `d_`
   (PairTaafsData, in pair_taafs_data.h), so LAMMPS code including it needs no torch headers.
   The computation is in pair_taafs.cpp, the input commands and init in pair_taafs_setup.cpp.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_TAAFS_H
#define LMP_PAIR_TAAFS_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairTaafsData;

class PairTaafs : public Pair {
 public:
  // `chunk auto` (the default): at most this many edges per model call on the CPU, and on a GPU
  // (which wants large calls; untested); see compute() and doc/pair_taafs.md.
  static constexpr int64_t AUTO_CHUNK_EDGES = 10000;
  static constexpr int64_t AUTO_CHUNK_EDGES_GPU = 1000000;

  PairTaafs(class LAMMPS *);
  ~PairTaafs() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

 protected:
  virtual void allocate();
  // Load the model of pair_coeff on this rank (onto the GPU of its node-local rank, if any) and
  // map the atom types to its species (from map_element2type()'s map and elements): "" on
  // success, else the error message.  A rank can fail alone (a relative path read from its own
  // working directory, a GPU it lacks), so coeff() agrees on the outcome with every rank.
  std::string load_model(const std::string &path, int local_rank);
  // Pass 1 of compute(): d_->centres and the number of edges of each; rejects non-finite
  // positions and overlapping atoms.
  void count_edges();
  // Pass 2: the nodes and edges of centres [begin, end) of d_->centres into d_'s buffers.
  void fill_chunk(int64_t begin, int64_t end, int64_t n_edges);
  // Errors (error->one: only this rank may see them) naming the atom IDs and the step.
  [[noreturn]] void error_nonfinite_position(int i);
  [[noreturn]] void error_overlap(int i, int j, double rsq);
  void check_model_output(const double *e, int64_t n_local, const double *g, int64_t n_edges);
  // One model call on centres [begin, end) of d_->centres with n_edges edges in total; adds
  // energies, forces and per-atom virials, and the global virial into w[6].
  void compute_chunk(int64_t begin, int64_t end, int64_t n_edges, double *w);

  std::unique_ptr<PairTaafsData> d_;    // libtorch state: model, device, reusable buffers
  std::string device_request_;          // "auto" | "cpu" | "cuda" | "cuda:N"
  int nthreads_;                        // torch intra-op threads per MPI rank
  double cutoff_;                       // model cutoff, Å (from the model file)
  // Centres are evaluated in chunks of consecutive centres (memory grows with the edges of one
  // model call): at most chunk_atoms_ centres (0 = no limit) and, once a chunk has one centre,
  // at most chunk_edges_ edges (0 = no limit).  auto: (0, AUTO_CHUNK_EDGES[_GPU], set by
  // init_style() from the model's device); off: (0, 0); N: (N, 0).
  int64_t chunk_atoms_;
  int64_t chunk_edges_;
  std::string chunk_request_;           // "auto" | "off" | N, as given (for the log)
  bool report_chunks_;                  // log the chunks of the first step of a run (rank 0)
  std::string chunk_description() const;    // e.g. "chunk auto: at most 10000 edges per model call"
  std::vector<int> species_of_type_;    // [ntypes+1] model species index of each type, -1 = NULL
};

}    // namespace LAMMPS_NS

#endif
