/* -*- c++ -*- ----------------------------------------------------------
   PairTaafsData: the libtorch state of pair_style taafs (model and per-step buffers), shared by
   pair_taafs.cpp (compute) and pair_taafs_setup.cpp (input commands); hidden from pair_taafs.h.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_TAAFS_DATA_H
#define LMP_PAIR_TAAFS_DATA_H

#include "taafs_model.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {
class PairTaafsData {
 public:
  std::unique_ptr<TaafsModel> model;
  std::string model_path;
  std::vector<std::unique_ptr<TaafsModel>> members;    // committee members 1..K-1
  std::vector<std::string> member_paths;               // their files, as pair_style named them
  // the last model call: per-atom energies [n_local] and dE/d edge_vectors [n_edges, 3] (CPU;
  // grad undefined when the chunk has no edges)
  torch::Tensor energies, grad;
  // per-step buffers, grown when needed and reused
  std::vector<int> centres;              // [n_centres] LAMMPS atom index of each centre
  std::vector<int64_t> edges_of_centre;  // [n_centres] edges of each centre (within the cutoff)
  std::vector<int64_t> species;          // [n_nodes] model species index (current chunk)
  std::vector<int64_t> edge_index;       // [2, n_edges] row 0 then row 1 (current chunk)
  std::vector<double> edge_vectors;      // [n_edges * 3] r_j - r_i, Å (current chunk)
  std::vector<int> node_of_atom;         // [nall] node index in the current chunk, -1 = none
  std::vector<int> atom_of_node;         // [n_nodes] LAMMPS atom index (current chunk)
  // deviation steps only, K = number of models
  std::vector<double> member_forces;     // [nall][K][3] eV/Å, ghosts reverse-communicated
  std::vector<double> member_energies;   // [nlocal][K] eV
  std::vector<double> member_virial;     // [K][9] eV, this rank's edges, row-major xx xy .. zz
};
}    // namespace LAMMPS_NS

#endif
