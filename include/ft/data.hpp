// ft::data: datasets, the DataLoader, CSV, MNIST and the shipped digits.
#pragma once

#include "ft/data/csv.hpp"
#include "ft/data/dataloader.hpp"
#include "ft/data/dataset.hpp"
#include "ft/data/digits.hpp"
#include "ft/data/mnist.hpp"
#include "ft/data/read.hpp"
