// ft::utils: the TensorBoard writer (and reader), the progress bar, CRC-32C.
#pragma once

#include "ft/utils/crc32c.hpp"
#include "ft/utils/event_reader.hpp"
#include "ft/utils/progress_bar.hpp"
#include "ft/utils/summary_writer.hpp"
