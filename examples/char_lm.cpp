// A character-level language model of English words (data/words.txt.gz: 63,875 words from
// SCOWL), trained with AdamW on windows of the word stream: --model lstm (an Embedding, a 2-layer
// LSTM and a Linear layer predicting the next character) or --model transformer (token and
// position embeddings, a 4-layer causal TransformerEncoder of width 128, a Linear layer). Prints
// the validation perplexity against the unigram baseline, writes TensorBoard logs and a
// checkpoint, and samples a few new words.
//
//   ./char_lm [--model lstm|transformer] [--steps N] [--device cpu|cuda] [--logdir runs/char_lm]
//   tensorboard --logdir runs          # then open http://localhost:6006
//
// Exit status 0 when the validation perplexity is at most 0.6 × the unigram baseline's (the
// letters' frequencies alone).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ft/data.hpp"
#include "ft/ft.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"
#include "ft/utils.hpp"

namespace nn = ft::nn;
using ft::index_t;

constexpr index_t kVocab = 27;  // '\n' (a word's end) and a–z
constexpr index_t kSeq = 64, kBatch = 32, kEmbed = 32, kHidden = 256, kWidth = 128;

std::int64_t char_id(char c) { return c == '\n' ? 0 : c - 'a' + 1; }
char id_char(std::int64_t i) { return i == 0 ? '\n' : static_cast<char>('a' + i - 1); }

// tokens [seq, batch] → logits [seq·batch, vocab]
struct CharLSTM : nn::Module<CharLSTM> {
  nn::Embedding<float> embed{kVocab, kEmbed};
  nn::LSTM<float> lstm{kEmbed, kHidden, {.num_layers = 2}};
  nn::Linear<float> head{kHidden, kVocab};
  template <class V>
  void visit(V&& v) {
    v("embed", embed), v("lstm", lstm), v("head", head);
  }
  ft::Var<float, 2> forward(const ft::Tensor<std::int64_t, 2>& tokens) {
    auto [out, h_n, c_n] = lstm(embed(tokens));
    return head(out.reshape({-1, kHidden}));
  }
};

// tokens [seq, batch] → logits [seq·batch, vocab]; position t attends to positions ≤ t only.
struct CharTransformer : nn::Module<CharTransformer> {
  nn::Embedding<float> embed{kVocab, kWidth}, position{kSeq, kWidth};
  nn::TransformerEncoder<float> encoder{kWidth, 4, 4, {.dim_feedforward = 4 * kWidth, .dropout = 0.1}, true};
  nn::Linear<float> head{kWidth, kVocab};
  template <class V>
  void visit(V&& v) {
    v("embed", embed), v("position", position), v("encoder", encoder), v("head", head);
  }
  ft::Var<float, 2> forward(const ft::Tensor<std::int64_t, 2>& tokens) {
    const index_t len = tokens.size(0);
    const ft::Tensor<std::int64_t, 2> pos = ft::arange<std::int64_t>(0, len, 1, tokens.device()).reshape({len, 1});
    ft::Var<float, 3> h = embed(tokens) + position(pos);  // [seq, batch, width] + [seq, 1, width]
    h = encoder(h, ft::NoMask{}, ft::Tensor<bool, 2>(), /*is_causal=*/true);
    return head(h.reshape({-1, kWidth}));
  }
};

// Windows of the stream: inputs [kSeq, kBatch] (time-major) and the next characters [kSeq·kBatch].
struct Batch {
  ft::Tensor<std::int64_t, 2> x;
  ft::Tensor<std::int64_t, 1> y;
};
Batch windows(const std::vector<std::int64_t>& stream, const std::vector<std::size_t>& starts, ft::Device dev) {
  const index_t b = static_cast<index_t>(starts.size());
  std::vector<std::int64_t> x(static_cast<std::size_t>(kSeq * b)), y(x.size());
  for (index_t j = 0; j < b; ++j)
    for (index_t t = 0; t < kSeq; ++t) {
      const std::size_t at = starts[static_cast<std::size_t>(j)] + static_cast<std::size_t>(t);
      x[static_cast<std::size_t>(t * b + j)] = stream[at];
      y[static_cast<std::size_t>(t * b + j)] = stream[at + 1];
    }
  return {ft::from_vector(x, {kSeq, b}, dev), ft::from_vector(y, {kSeq * b}, dev)};
}

// exp(mean cross-entropy) over the validation stream, in consecutive windows.
template <class Model>
double perplexity(Model& model, const std::vector<std::int64_t>& stream, ft::Device dev) {
  ft::NoGradGuard no_grad;
  model.eval();
  double total = 0;
  std::int64_t count = 0;
  std::vector<std::size_t> starts;
  for (std::size_t s = 0; s + kSeq + 1 <= stream.size(); s += kSeq) {
    starts.push_back(s);
    if (starts.size() == 256 || s + 2 * kSeq + 1 > stream.size()) {
      const Batch b = windows(stream, starts, dev);
      ft::Var<float, 0> loss = nn::functional::cross_entropy<ft::Reduction::Sum>(model(b.x), b.y);
      total += loss.value().item();
      count += b.y.numel();
      starts.clear();
    }
  }
  model.train();
  return std::exp(total / static_cast<double>(count));
}

// Samples a word: characters drawn from softmax(logits / temperature) until a word's end, each
// from the model run over the word so far (after a word's end).
template <class Model>
std::string sample_word(Model& model, std::mt19937& rng, ft::Device dev, double temperature = 0.8) {
  ft::NoGradGuard no_grad;
  model.eval();
  std::vector<std::int64_t> context{0};  // start after a word's end
  std::string word;
  while (word.size() < 24) {
    const index_t len = static_cast<index_t>(context.size());
    const ft::Var<float, 2> logits = model(ft::from_vector(context, {len, 1}, dev));
    const ft::Tensor<float, 1> last = logits.value().select(0, len - 1).to(ft::kCPU);
    std::vector<double> p;
    for (float l : last.to_vector()) p.push_back(std::exp(static_cast<double>(l) / temperature));
    const std::int64_t id = std::discrete_distribution<std::int64_t>(p.begin(), p.end())(rng);
    if (id == 0) break;
    word += id_char(id);
    context.push_back(id);
  }
  model.train();
  return word;
}

// Trains `model` for `steps` batches; returns the final validation perplexity.
template <class Model>
double train(Model& model, const std::vector<std::int64_t>& train_ids, const std::vector<std::int64_t>& val_ids,
             int steps, double max_lr, ft::Device dev, const std::string& logdir, std::mt19937& rng) {
  model.to(dev);
  ft::optim::AdamW opt(model.parameters(), {.lr = max_lr, .weight_decay = 1e-4});
  ft::optim::OneCycleLR schedule(opt, max_lr, {.total_steps = steps});
  ft::utils::SummaryWriter writer(logdir);
  std::uniform_int_distribution<std::size_t> offset(0, train_ids.size() - kSeq - 2);
  ft::utils::ProgressBar bar(steps, {.desc = "char_lm"});
  double val_ppl = 0;
  for (int step = 1; step <= steps; ++step) {
    std::vector<std::size_t> starts(kBatch);
    for (auto& s : starts) s = offset(rng);
    const Batch b = windows(train_ids, starts, dev);
    opt.zero_grad();
    ft::Var<float, 0> loss = nn::functional::cross_entropy(model(b.x), b.y);
    loss.backward();
    nn::clip_grad_norm_(model.parameters(), 1.0);
    opt.step();
    schedule.step();
    const double l = loss.value().item();
    writer.add_scalar("train/loss", l, step);
    bar.set_postfix({{"loss", l}});
    bar.update();
    if (step % 200 == 0 || step == steps) {
      val_ppl = perplexity(model, val_ids, dev);
      writer.add_scalar("val/perplexity", val_ppl, step);
      bar.set_postfix({{"loss", l}, {"val_ppl", val_ppl}});
    }
  }
  bar.close();
  ft::io::save_checkpoint(logdir + "/char_lm.ckpt", model, opt,
                          {{"steps", std::to_string(steps)}, {"val_perplexity", std::to_string(val_ppl)}});
  std::printf("sampled words:");
  for (int i = 0; i < 8; ++i) std::printf(" %s", sample_word(model, rng, dev).c_str());
  std::printf("\n");
  return val_ppl;
}

int main(int argc, char** argv) {
  int steps = 0;  // 600 for the LSTM, 300 for the Transformer (each about 100 s on 2 cores)
  ft::Device dev = ft::cuda::is_available() ? ft::Device(ft::kCUDA, 0) : ft::Device(ft::kCPU);
  std::string logdir = "runs/char_lm", model_name = "lstm";
  for (int i = 1; i < argc; ++i) {
    const bool value = i + 1 < argc;
    if (value && !std::strcmp(argv[i], "--steps")) {
      steps = std::atoi(argv[++i]);
    } else if (value && !std::strcmp(argv[i], "--device")) {
      dev = std::strcmp(argv[++i], "cuda") ? ft::Device(ft::kCPU) : ft::Device(ft::kCUDA, 0);
    } else if (value && !std::strcmp(argv[i], "--logdir")) {
      logdir = argv[++i];
    } else if (value && !std::strcmp(argv[i], "--model")) {
      model_name = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--model lstm|transformer] [--steps N] [--device cpu|cuda] [--logdir DIR]\n",
                   argv[0]);
      return 2;
    }
  }
  if (model_name != "lstm" && model_name != "transformer") {
    std::fprintf(stderr, "char_lm: --model is lstm or transformer, not %s\n", model_name.c_str());
    return 2;
  }
  if (steps <= 0) steps = model_name == "lstm" ? 600 : 300;
  const auto start = std::chrono::steady_clock::now();
  ft::manual_seed(0);

  // the words, shuffled once; 90 % to train on, 10 % to validate on, each a stream of ids
  const auto bytes = ft::data::read_maybe_gzip(ft::data::shipped_file("words.txt.gz"), "char_lm");
  std::vector<std::string> words(1);
  for (std::uint8_t b : bytes) {
    if (b == '\n')
      words.emplace_back();
    else
      words.back() += static_cast<char>(b);
  }
  if (words.back().empty()) words.pop_back();
  std::mt19937 rng(0);
  std::shuffle(words.begin(), words.end(), rng);
  const std::size_t n_train = words.size() * 9 / 10;
  std::vector<std::int64_t> train_ids, val_ids;
  for (std::size_t w = 0; w < words.size(); ++w) {
    auto& s = w < n_train ? train_ids : val_ids;
    for (char ch : words[w]) s.push_back(char_id(ch));
    s.push_back(0);
  }
  // the unigram baseline: the training characters' frequencies (add-one), scored on validation
  std::vector<double> freq(kVocab, 1.0);
  for (auto id : train_ids) freq[static_cast<std::size_t>(id)] += 1;
  double norm = 0, nll = 0;
  for (double f : freq) norm += f;
  for (auto id : val_ids) nll -= std::log(freq[static_cast<std::size_t>(id)] / norm);
  const double unigram = std::exp(nll / static_cast<double>(val_ids.size()));
  std::printf("words: %zu to train on (%zu characters), %zu to validate on; %s; logs in %s\n", n_train,
              train_ids.size(), words.size() - n_train, dev.is_cuda() ? "CUDA" : "the CPU", logdir.c_str());

  double val_ppl = 0;
  if (model_name == "lstm") {
    CharLSTM model;
    val_ppl = train(model, train_ids, val_ids, steps, 5e-3, dev, logdir, rng);
  } else {
    CharTransformer model;
    val_ppl = train(model, train_ids, val_ids, steps, 2e-3, dev, logdir, rng);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("validation perplexity: %s %.2f, unigram baseline %.2f (ratio %.2f; %.1f s; checkpoint %s)\n",
              model_name.c_str(), val_ppl, unigram, val_ppl / unigram, seconds, (logdir + "/char_lm.ckpt").c_str());
  return val_ppl <= 0.6 * unigram ? 0 : 1;
}
