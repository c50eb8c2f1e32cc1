// PReLU as a TensorFlow op: the registration, the shape functions and the
// CPU kernels, in the way TensorFlow's own activations are written
// (core/ops/nn_ops.cc registers, core/kernels/relu_op.cc computes).
//
//   y  = x              if x > 0, else alpha * x
//   dx = dy             if x > 0, else alpha * dy
//   dalpha = sum of dy * min(x, 0) over the axes alpha is shared on
//
// x is seen as a 3-D array (outer, channels, inner): alpha holds one value per
// channel, the axes of size > 1 in alpha must be contiguous, so every layout
// pt.PReLU produces (channel-wise channels_last or channels_first, shared,
// per element) is plain index arithmetic. A NaN x is "not > 0", so it takes
// the alpha * x branch and stays NaN.
//
// Build: see prelu_tutorial/custom_op/build.py (g++ with tf.sysconfig flags).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace prelu_tutorial {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// ---------------------------------------------------------------------------
// [registration]
// Checks, as far as the static shapes tell, that alpha fits x: no more axes
// than x, each axis 1 or x's size, and the axes of size > 1 contiguous.
absl::Status CheckAlphaShape(InferenceContext* c, ShapeHandle x,
                             ShapeHandle alpha) {
  if (!c->RankKnown(x) || !c->RankKnown(alpha)) return absl::OkStatus();
  const int x_rank = c->Rank(x);
  const int alpha_rank = c->Rank(alpha);
  const auto error = [&](const char* reason) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PReLU: alpha of shape ", c->DebugString(alpha), " does not fit x of ",
        "shape ", c->DebugString(x), ": ", reason));
  };
  if (alpha_rank > x_rank) return error("alpha has more axes than x");
  int first = -1, last = -1;
  for (int k = 0; k < alpha_rank; ++k) {
    DimensionHandle a = c->Dim(alpha, k);
    DimensionHandle d = c->Dim(x, x_rank - alpha_rank + k);
    if (!c->ValueKnown(a)) return absl::OkStatus();
    if (c->Value(a) == 1) continue;
    if (c->ValueKnown(d) && c->Value(d) != c->Value(a)) {
      return error("each axis of alpha must be 1 or the size of x's axis");
    }
    if (first < 0) first = k;
    last = k;
  }
  for (int k = std::max(first, 0); k < last; ++k) {
    DimensionHandle d = c->Dim(x, x_rank - alpha_rank + k);
    const bool x_has_size_1 = c->ValueKnown(d) && c->Value(d) == 1;
    if (c->Value(c->Dim(alpha, k)) == 1 && !x_has_size_1) {
      return error("the axes where alpha has size > 1 must be contiguous");
    }
  }
  return absl::OkStatus();
}

REGISTER_OP("PReLU")
    .Input("x: T")
    .Input("alpha: T")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckAlphaShape(c, c->input(0), c->input(1)));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("PReLU: x where x > 0, else alpha * x; alpha broadcasts to x.");

REGISTER_OP("PReLUGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("alpha: T")
    .Output("dx: T")
    .Output("dalpha: T")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &x));
      TF_RETURN_IF_ERROR(CheckAlphaShape(c, x, c->input(2)));
      c->set_output(0, x);
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    })
    .Doc("Both gradients of PReLU in one pass over x and dy.");
// [/registration]

// ---------------------------------------------------------------------------
// [layout]
// x as (outer, channels, inner); alpha[c] applies to x[o, c, i].
struct Layout {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
};

absl::Status GetLayout(const TensorShape& x, const TensorShape& alpha,
                       Layout* layout) {
  const int x_rank = x.dims();
  const int alpha_rank = alpha.dims();
  const auto error = [&](const char* reason) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PReLU: alpha of shape ", alpha.DebugString(), " does not fit x of ",
        "shape ", x.DebugString(), ": ", reason));
  };
  if (alpha_rank > x_rank) return error("alpha has more axes than x");
  const int offset = x_rank - alpha_rank;
  int first = -1, last = -1;
  for (int k = 0; k < alpha_rank; ++k) {
    const int64_t a = alpha.dim_size(k);
    if (a == 1) continue;
    if (a != x.dim_size(offset + k)) {
      return error("each axis of alpha must be 1 or the size of x's axis");
    }
    if (first < 0) first = k;
    last = k;
  }
  *layout = Layout();
  if (first < 0) {  // one alpha for everything
    layout->inner = x.num_elements();
    return absl::OkStatus();
  }
  for (int k = first; k <= last; ++k) {
    if (alpha.dim_size(k) != x.dim_size(offset + k)) {
      return error("the axes where alpha has size > 1 must be contiguous");
    }
  }
  for (int k = 0; k < offset + first; ++k) layout->outer *= x.dim_size(k);
  layout->channels = alpha.num_elements();
  for (int k = offset + last + 1; k < x_rank; ++k) {
    layout->inner *= x.dim_size(k);
  }
  return absl::OkStatus();
}
// [/layout]

// ---------------------------------------------------------------------------
// [loops]
// The inner loops, written so that g++ -O3 turns each into SIMD code (check
// with -fopt-info-vec): __restrict promises that the arrays do not overlap,
// and every select picks between two values already computed, which is a
// SIMD blend rather than a branch. That needs -fno-trapping-math (build.py
// passes it): by default g++ assumes a comparison with NaN may trap, keeps
// the branch and leaves the loop scalar ("control flow in loop"). The flag
// changes no result, only what the compiler may assume about floating-point
// exceptions, which TensorFlow never reads. Sums are float for 16-bit types.
template <typename T>
struct Accumulator {
  using type = T;
};
template <>
struct Accumulator<Eigen::half> {
  using type = float;
};
template <>
struct Accumulator<Eigen::bfloat16> {
  using type = float;
};

// y = prelu(x) on one row whose alphas are contiguous (inner == 1).
template <typename T>
void ForwardRow(const T* __restrict x, const T* __restrict alpha,
                T* __restrict y, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const T scaled = alpha[k] * v;
    y[k] = v > T(0) ? v : scaled;
  }
}

// y = prelu(x) on a run of elements that share one alpha (inner > 1).
template <typename T>
void ForwardRun(const T* __restrict x, const T alpha, T* __restrict y,
                int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const T scaled = alpha * v;
    y[k] = v > T(0) ? v : scaled;
  }
}

// dx on one row with contiguous alphas, and dalpha's terms added to the
// row's own partial sums: each channel keeps its own sum, no reduction
// across SIMD lanes is needed.
template <typename T, typename Acc>
void BackwardRow(const T* __restrict dy, const T* __restrict x,
                 const T* __restrict alpha, T* __restrict dx,
                 Acc* __restrict partial, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const T d = dy[k];
    const T scaled = alpha[k] * d;
    const Acc term = Acc(d) * (v > T(0) ? Acc(0) : Acc(v));
    dx[k] = v > T(0) ? d : scaled;
    partial[k] += term;
  }
}

// dx on a run that shares one alpha, and dalpha's terms summed into
// kLanes fixed lanes (element k goes to lane k % kLanes): the order of the
// additions is fixed, so the sum is deterministic and still vectorizes.
// Not inlined: inside the tile loop below, g++ no longer vectorizes it.
constexpr int kLanes = 16;

template <typename T, typename Acc>
__attribute__((noinline)) void BackwardRun(
    const T* __restrict dy, const T* __restrict x, const T alpha,
    T* __restrict dx, Acc* __restrict lanes, int64_t n) {
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const T v = x[k + l];
      const T d = dy[k + l];
      const T scaled = alpha * d;
      dx[k + l] = v > T(0) ? d : scaled;
      lanes[l] += Acc(d) * (v > T(0) ? Acc(0) : Acc(v));
    }
  }
  for (int l = 0; k < n; ++k, ++l) {
    const T v = x[k];
    const T d = dy[k];
    const T scaled = alpha * d;
    dx[k] = v > T(0) ? d : scaled;
    lanes[l] += Acc(d) * (v > T(0) ? Acc(0) : Acc(v));
  }
}
// [/loops]

// ---------------------------------------------------------------------------
// [forward]
template <typename T>
class PReLUOp : public OpKernel {
 public:
  explicit PReLUOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& alpha = context->input(1);
    Layout layout;
    OP_REQUIRES_OK(context, GetLayout(x.shape(), alpha.shape(), &layout));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    const int64_t n = x.NumElements();
    if (n == 0) return;
    const T* x_data = x.flat<T>().data();
    const T* alpha_data = alpha.flat<T>().data();
    T* y_data = y->flat<T>().data();
    const int64_t channels = layout.channels;
    const int64_t inner = layout.inner;
    // Elements [begin, end) of the flat array, cut where alpha changes.
    auto work = [=](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end;) {
        if (inner == 1) {
          const int64_t c = i % channels;
          const int64_t stop = std::min(end, i - c + channels);
          ForwardRow(x_data + i, alpha_data + c, y_data + i, stop - i);
          i = stop;
        } else {
          const int64_t run = i / inner;
          const int64_t stop = std::min(end, (run + 1) * inner);
          ForwardRun(x_data + i, alpha_data[run % channels], y_data + i,
                     stop - i);
          i = stop;
        }
      }
    };
    // TensorFlow's intra-op thread pool; a cost of a few cycles per element
    // keeps small tensors on the calling thread.
    const auto& threads = *context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads.num_threads, threads.workers, n,
                      /*cost_per_unit=*/2, work);
  }
};
// [/forward]

// ---------------------------------------------------------------------------
// [backward]
// Tiles: a fixed partition of the work that depends only on the shapes,
// never on the number of threads. Each tile writes its own partial sums of
// dalpha; the partials are then added in tile order. So dalpha has the same
// bits on 1 thread or 64.
constexpr int64_t kTileElements = 1 << 14;
constexpr int64_t kMaxPartials = 1 << 16;

template <typename T>
class PReLUGradOp : public OpKernel {
 public:
  using Acc = typename Accumulator<T>::type;

  explicit PReLUGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const Tensor& alpha = context->input(2);
    OP_REQUIRES(context, dy.shape() == x.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "PReLUGrad: dy of shape ", dy.shape().DebugString(),
                    " must have x's shape ", x.shape().DebugString())));
    Layout layout;
    OP_REQUIRES_OK(context, GetLayout(x.shape(), alpha.shape(), &layout));
    Tensor* dx = nullptr;
    Tensor* dalpha = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, alpha.shape(), &dalpha));
    const Args args{dy.flat<T>().data(), x.flat<T>().data(),
                    alpha.flat<T>().data(), dx->flat<T>().data(), layout};
    std::vector<Acc> sums(alpha.NumElements(), Acc(0));
    if (x.NumElements() > 0) {
      if (layout.inner == 1) {
        Rows(context, args, sums.data());
      } else {
        Runs(context, args, sums.data());
      }
    }
    T* dalpha_data = dalpha->flat<T>().data();
    for (size_t c = 0; c < sums.size(); ++c) dalpha_data[c] = T(sums[c]);
  }

 private:
  struct Args {
    const T* dy;
    const T* x;
    const T* alpha;
    T* dx;
    Layout layout;
  };

  static void Run(OpKernelContext* context, int64_t tiles, int64_t tile_cost,
                  const std::function<void(int64_t, int64_t)>& work) {
    const auto& threads = *context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads.num_threads, threads.workers, tiles, tile_cost,
                      work);
  }

  // inner == 1: rows of `channels` elements. A tile is a block of rows times
  // a block of channels, with one partial sum per channel and row block.
  static void Rows(OpKernelContext* context, const Args& a, Acc* sums) {
    const int64_t rows = a.layout.outer;
    const int64_t channels = a.layout.channels;
    const int64_t rows_per_block = std::max(
        {int64_t{1}, (kTileElements + channels - 1) / channels,
         (rows * channels + kMaxPartials - 1) / kMaxPartials});
    const int64_t row_blocks = (rows + rows_per_block - 1) / rows_per_block;
    const int64_t width = std::min(
        channels, std::max(int64_t{kLanes}, kTileElements / rows_per_block));
    const int64_t channel_blocks = (channels + width - 1) / width;
    std::vector<Acc> partial(row_blocks * channels, Acc(0));
    Run(context, row_blocks * channel_blocks, 2 * rows_per_block * width,
        [&](int64_t begin, int64_t end) {
          for (int64_t tile = begin; tile < end; ++tile) {
            const int64_t block = tile / channel_blocks;
            const int64_t c0 = (tile % channel_blocks) * width;
            const int64_t n = std::min(width, channels - c0);
            const int64_t r1 = std::min(rows, (block + 1) * rows_per_block);
            Acc* part = partial.data() + block * channels + c0;
            for (int64_t r = block * rows_per_block; r < r1; ++r) {
              const int64_t i = r * channels + c0;
              BackwardRow(a.dy + i, a.x + i, a.alpha + c0, a.dx + i, part, n);
            }
          }
        });
    for (int64_t block = 0; block < row_blocks; ++block) {
      const Acc* part = partial.data() + block * channels;
      for (int64_t c = 0; c < channels; ++c) sums[c] += part[c];
    }
  }

  // inner > 1: runs of `inner` elements that share alpha[run % channels]. A
  // tile is a block of runs of one channel, cut into chunks of the run, with
  // one partial sum.
  static void Runs(OpKernelContext* context, const Args& a, Acc* sums) {
    const int64_t outer = a.layout.outer;
    const int64_t channels = a.layout.channels;
    const int64_t inner = a.layout.inner;
    const int64_t chunk = std::min(inner, kTileElements);
    const int64_t chunks = (inner + chunk - 1) / chunk;
    const int64_t outer_per_block = std::max(int64_t{1}, kTileElements / chunk);
    const int64_t outer_blocks =
        (outer + outer_per_block - 1) / outer_per_block;
    // Tile index = ((block * channels) + c) * chunks + j.
    const int64_t tiles = outer_blocks * channels * chunks;
    std::vector<Acc> partial(tiles, Acc(0));
    Run(context, tiles, 2 * outer_per_block * chunk,
        [&](int64_t begin, int64_t end) {
          for (int64_t tile = begin; tile < end; ++tile) {
            const int64_t j = tile % chunks;
            const int64_t c = (tile / chunks) % channels;
            const int64_t block = tile / (chunks * channels);
            const int64_t i0 = j * chunk;
            const int64_t n = std::min(chunk, inner - i0);
            const int64_t o1 = std::min(outer, (block + 1) * outer_per_block);
            const T alpha = a.alpha[c];
            Acc lanes[kLanes] = {};
            for (int64_t o = block * outer_per_block; o < o1; ++o) {
              const int64_t i = (o * channels + c) * inner + i0;
              BackwardRun(a.dy + i, a.x + i, alpha, a.dx + i, lanes, n);
            }
            Acc total = Acc(0);
            for (int l = 0; l < kLanes; ++l) total += lanes[l];
            partial[tile] = total;
          }
        });
    for (int64_t tile = 0; tile < tiles; ++tile) {
      sums[(tile / chunks) % channels] += partial[tile];
    }
  }
};
// [/backward]

// ---------------------------------------------------------------------------
// [kernels]
#define REGISTER_PRELU_KERNELS(type)                              \
  REGISTER_KERNEL_BUILDER(Name("PReLU")                           \
                              .Device(tensorflow::DEVICE_CPU)     \
                              .TypeConstraint<type>("T"),         \
                          PReLUOp<type>);                         \
  REGISTER_KERNEL_BUILDER(Name("PReLUGrad")                       \
                              .Device(tensorflow::DEVICE_CPU)     \
                              .TypeConstraint<type>("T"),         \
                          PReLUGradOp<type>)

REGISTER_PRELU_KERNELS(Eigen::half);
REGISTER_PRELU_KERNELS(Eigen::bfloat16);
REGISTER_PRELU_KERNELS(float);
REGISTER_PRELU_KERNELS(double);
#undef REGISTER_PRELU_KERNELS
// [/kernels]

}  // namespace prelu_tutorial
