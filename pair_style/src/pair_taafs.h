/* -*- c++ -*- ----------------------------------------------------------
   pair_style taafs: neural-network force fields exported by mdval as TorchScript (model ABI v1,
   see mdval/abi.py and DESIGN.md section 3).

   This header is free of libtorch: everything torch lives behind the private pointer `d_`
   (PairTaafsData, in pair_taafs_data.h), so LAMMPS code including it needs no torch headers.
   The computation is in pair_taafs.cpp, the input commands and init in pair_taafs_setup.cpp,
   the committee (model deviation, keyword committee) in pair_taafs_committee.cpp.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_TAAFS_H
#define LMP_PAIR_TAAFS_H

#include "pair.h"

#include <cstdint>
#include <cstdio>
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
  // committee: max/min/avg_devi_v, max/min/avg_devi_f (a model_devi line; compute pair's vector)
  static constexpr int N_DEVI_COLUMNS = 6;

  PairTaafs(class LAMMPS *);
  ~PairTaafs() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  // The committee's per-atom deviations for fix pair / compute (model_devi_f, model_devi_e) and
  // the trigger fix pair sets (model_devi_f_flag, model_devi_e_flag); see the committee file.
  void *extract(const char *, int &) override;
  void *extract_peratom(const char *, int &) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

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
  void check_model_output(const std::string &path, const double *e, int64_t n_local,
                          const double *g, int64_t n_edges);
  // One model call on centres [begin, end) of d_->centres with n_edges edges in total; adds
  // energies, forces and per-atom virials, and the global virial into w[6].
  void compute_chunk(int64_t begin, int64_t end, int64_t n_edges, double *w);
  // Model k (0: the pair_coeff model, k >= 1: committee member k) on the current chunk; its
  // energies and gradients, on the CPU and checked finite, into d_->energies and d_->grad.
  void run_model(int k, int64_t n_local, int64_t n_edges);

  // Committee (pair_taafs_committee.cpp).  Models 1..K-1 are evaluated only on deviation steps:
  // multiples of out_freq, or steps where fix pair set the trigger.
  int committee_keyword(int iarg, int narg, char **arg);    // args consumed, 0: not ours
  void check_committee_settings(bool output_keywords);
  std::string load_committee(const std::string &driving_path);    // "" or the error
  void log_committee() const;
  void init_committee();    // opens out_file (rank 0) and allocates the per-atom arrays
  void grow_devi_arrays();
  int n_models() const;    // K, 1 without a committee
  void begin_deviation_step();
  void record_member(int k, int64_t n_local, int64_t n_edges);    // model k's chunk results
  void finish_deviation_step();    // reverse comm, statistics, pvector, model_devi line
  void write_atomic_deviation();    // the `atomic` columns, gathered in atom-ID order
  void close_devi_file();

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

  std::vector<std::string> committee_paths_;    // the members after the pair_coeff model
  bigint devi_out_freq_;                        // steps between model_devi lines, 0: none
  std::string devi_out_file_;                   // DeePMD-kit's model_devi.out format
  bool devi_atomic_;                            // keyword atomic: per-atom force columns
  double devi_relative_f_;                      // keyword relative EPS (eV/Å), < 0: absolute
  double devi_relative_v_;                      // keyword relative_v EPS (eV/atom), < 0: absolute
  int devi_trigger_;                            // set to 1 by fix pair for one step
  bool devi_step_;                              // this compute() evaluates the committee
  FILE *devi_fp_;                               // the model_devi file (rank 0)
  int devi_nmax_;                               // allocated length of the per-atom arrays
  double *devi_f_atom_;                         // [nmax] force deviation of each local atom
  double *devi_e_atom_;                         // [nmax] energy deviation of each local atom
};

}    // namespace LAMMPS_NS

#endif
