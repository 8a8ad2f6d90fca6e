// ft::vision::ImageFolder: a dataset of images stored one folder a class, as torchvision's.
//
//   root/cat/001.png, root/cat/x/002.jpg, root/dog/003.jpeg ...
//   ft::vision::ImageFolder train("root", ft::vision::Compose(ft::vision::Resize{{32}}, ft::vision::ToTensor()));
//   auto [image, label] = train.get(0);   // the transform's output, Tensor<int64_t, 0>
//   ft::data::DataLoader loader(train, {.batch_size = 64, .shuffle = true, .num_workers = 2, .seed = 7});
//
// Classes are the sub-folders of root, sorted; a class's files are found in its folder and
// below (symbolic links followed), sorted by folder then name, keeping the extensions given
// (.png, .jpg, .jpeg, .bmp, .webp, .tif, .tiff by default, in any case). Images are read when a sample is asked for; a
// file that cannot be decoded is an ft::Error naming it. A random transform draws from an Rng
// seeded by the DataLoader from (seed, epoch, index).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/data/dataset.hpp"
#include "ft/vision/image.hpp"
#include "ft/vision/transforms.hpp"

namespace ft::inline FT_ABI::vision {

struct ImageFolderOptions {
  ImageReadMode mode = ImageReadMode::RGB;  // torchvision's default loader converts to RGB
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"};
  bool allow_empty = false;  // a class folder without images is an error unless this is set
};

// One image file and its class.
struct ImageSample {
  std::string path;
  std::int64_t target;
};

// The classes (sorted sub-folder names) and samples of an image folder tree.
inline std::pair<std::vector<std::string>, std::vector<ImageSample>> scan_image_folder(
    const std::string& root, const ImageFolderOptions& options = {}) {
  namespace fs = std::filesystem;
  const char* op = "ImageFolder";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail(op, "\"", root, "\" is not a directory");
  std::vector<std::string> classes;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory()) classes.push_back(entry.path().filename().string());
  if (ec) fail(op, "cannot list \"", root, "\": ", ec.message());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) fail(op, "\"", root, "\" has no class folders (expected root/<class>/<image files>)");
  auto wanted = [&](const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const auto& e : options.extensions) {
      std::string want = e;
      std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == want) return true;
    }
    return false;
  };
  std::vector<ImageSample> samples;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / classes[c];
    std::vector<std::pair<std::string, std::string>> files;  // (folder, name): os.walk's sorted order
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code type_ec;
      if (it->is_regular_file(type_ec) && wanted(it->path()))
        files.emplace_back(it->path().parent_path().string(), it->path().filename().string());
    }
    if (ec) fail(op, "cannot list \"", dir.string(), "\": ", ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty() && !options.allow_empty)
      fail(
          op, "the class folder \"", dir.string(), "\" has no image files (extensions: ",
          [&] {
            std::string s;
            for (const auto& e : options.extensions) s += (s.empty() ? "" : " ") + e;
            return s;
          }(),
          "); set allow_empty to keep it");
    for (const auto& [folder, name] : files)
      samples.push_back({(fs::path(folder) / name).string(), static_cast<std::int64_t>(c)});
  }
  return {std::move(classes), std::move(samples)};
}

template <class Transform = Identity>
class ImageFolder {
 public:
  using image_type = decltype(detail::apply(std::declval<const Transform&>(), std::declval<Tensor<std::uint8_t, 3>>(),
                                            std::declval<Rng&>()));
  using sample_type = data::Example<image_type, Tensor<std::int64_t, 0>>;

  explicit ImageFolder(const std::string& root, Transform transform = {}, const ImageFolderOptions& options = {})
      : root_(root), transform_(std::move(transform)), options_(options) {
    auto [classes, samples] = scan_image_folder(root, options_);
    classes_ = std::make_shared<const std::vector<std::string>>(std::move(classes));
    samples_ = std::make_shared<const std::vector<ImageSample>>(std::move(samples));
  }

  index_t size() const { return static_cast<index_t>(samples_->size()); }
  // Sample i with the random transforms drawn from `seed`.
  sample_type get(index_t i, std::uint64_t seed) const {
    check(i >= 0 && i < size(), "ImageFolder", "index ", i, " is out of range for a dataset of ", size(), " images");
    const ImageSample& s = (*samples_)[static_cast<std::size_t>(i)];
    Rng rng(seed);
    auto image = detail::apply(transform_, read_image(s.path, options_.mode), rng);
    Tensor<std::int64_t, 0> target(Shape<0>{});
    target.data()[0] = s.target;
    return {std::move(image), target};
  }
  sample_type get(index_t i) const { return get(i, data::EpochSeed{}.for_sample(i)); }

  const std::string& root() const { return root_; }
  const std::vector<std::string>& classes() const { return *classes_; }
  std::map<std::string, std::int64_t> class_to_idx() const {
    std::map<std::string, std::int64_t> m;
    for (std::size_t c = 0; c < classes_->size(); ++c) m[(*classes_)[c]] = static_cast<std::int64_t>(c);
    return m;
  }
  const std::vector<ImageSample>& samples() const { return *samples_; }
  std::vector<std::int64_t> targets() const {
    std::vector<std::int64_t> t;
    for (const auto& s : *samples_) t.push_back(s.target);
    return t;
  }
  const Transform& transform() const { return transform_; }

 private:
  std::string root_;
  Transform transform_;
  ImageFolderOptions options_;
  std::shared_ptr<const std::vector<std::string>> classes_;
  std::shared_ptr<const std::vector<ImageSample>> samples_;
};

}  // namespace ft::inline FT_ABI::vision
