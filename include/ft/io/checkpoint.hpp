// Checkpoints: a model's and an optimizer's state dicts plus string metadata in one safetensors
// file ("model.<name>", "optimizer.<name>", the metadata in "__metadata__"), so Python can
// read it too. Written to a temporary file and renamed: a crash never leaves half a checkpoint.
//
//   ft::io::save_checkpoint("ckpt.safetensors", model, opt, {{"epoch", "3"}});
//   auto extra = ft::io::load_checkpoint("ckpt.safetensors", model, opt);   // extra["epoch"] == "3"
#pragma once

#include <map>
#include <span>
#include <string>

#include "ft/core/config.hpp"
#include "ft/io/safetensors.hpp"
#include "ft/nn/state_dict.hpp"

namespace ft::inline FT_ABI::io {

inline constexpr const char* kCheckpointFormat = "fusedtensor-checkpoint/1";

struct Checkpoint {
  nn::StateDict model, optimizer;
  std::map<std::string, std::string> extra;
};

// Splits a safetensors file's contents into a checkpoint; a file that is not one is an ft::Error.
FT_COMPILED Checkpoint read_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name,
                                       Device device = kCPU);
#if FT_DEFINES_COMPILED
FT_COMPILED Checkpoint read_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name, Device device) {
  SafetensorsFile f = from_safetensors_bytes(bytes, name, device);
  auto format = f.metadata.find("format");
  if (format == f.metadata.end() || format->second != kCheckpointFormat)
    fail("load_checkpoint", "\"", name,
         "\" is a safetensors file but not a fusedtensor checkpoint (its metadata has no "
         "\"format\": \"",
         kCheckpointFormat, "\"); load it with ft::io::load_safetensors");
  Checkpoint c;
  f.metadata.erase(format);
  c.extra = std::move(f.metadata);
  for (const auto& [key, t] : f.tensors) {
    if (key.rfind("model.", 0) == 0)
      c.model.insert(key.substr(6), t);
    else if (key.rfind("optimizer.", 0) == 0)
      c.optimizer.insert(key.substr(10), t);
    else
      fail("load_checkpoint", "\"", name, "\": tensor \"", key, "\" belongs to neither the model nor the optimizer");
  }
  return c;
}
#endif
inline Checkpoint read_checkpoint(const std::string& path, Device device = kCPU) {
  const std::vector<std::uint8_t> bytes = io::read_file(path, "load_checkpoint");
  return read_checkpoint(bytes, path, device);
}

// Any model with state_dict() (an nn::Module) and any optimizer with state_dict() (optim::Optimizer).
template <class Model, class Optimizer>
void save_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                     std::map<std::string, std::string> extra = {}) {
  check(!extra.count("format"), "save_checkpoint", "the extra key \"format\" is reserved");
  extra["format"] = kCheckpointFormat;
  nn::StateDict all;
  for (const auto& [k, t] : model.state_dict()) all.insert("model." + k, t);
  for (const auto& [k, t] : optimizer.state_dict()) all.insert("optimizer." + k, t);
  io::save_safetensors(path, all, extra);
}

// Loads into a live model and optimizer (strictly: every key must match) and returns the extra
// metadata. The tensors are read to the CPU and copied into the model's own devices.
template <class Model, class Optimizer>
std::map<std::string, std::string> load_checkpoint(const std::string& path, Model& model, Optimizer& optimizer) {
  Checkpoint c = read_checkpoint(path);
  model.load_state_dict(c.model);
  optimizer.load_state_dict(c.optimizer);
  return c.extra;
}

}  // namespace ft::inline FT_ABI::io
