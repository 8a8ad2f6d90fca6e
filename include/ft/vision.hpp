// ft::vision: images in and out (PNG through libpng, JPEG through libjpeg-turbo), ImageFolder,
// torchvision's transforms, make_grid and save_image.
#pragma once

#include "ft/vision/image.hpp"
#include "ft/vision/image_folder.hpp"
#include "ft/vision/transforms.hpp"
#include "ft/vision/utils.hpp"
