// PReLU as a TensorFlow op: the registration, the shape functions and the
// CPU kernels, in the way TensorFlow's own activations are written
// (core/ops/nn_ops.cc registers, core/kernels/relu_op.cc computes).
//
//   y  = x              if x > 0, else alpha * x
//   dx = dy             if x > 0, else alpha * dy
//   dalpha = sum of dy * min(x, 0) over the axes alpha is shared on
//
// alpha has its own dtype (Talpha): under mixed precision x is float16 and
// alpha a float32 variable. Each product is taken in the wide dtype (float32,
// or float64 if x or alpha is) and rounded once to x's dtype, and dalpha is
// summed in the wide dtype and returned in alpha's: the semantics of
// pt.prelu, bit for bit. A NaN x is "not > 0", so it takes the alpha * x
// branch and stays NaN. alpha broadcasts to x on any of its axes: they need
// not be next to each other.
//
// The ops live in the namespace "PreluTutorial>", so TensorFlow's generated
// Python wrappers are prelu_tutorial_prelu and prelu_tutorial_prelu_grad.
//
// Build: see prelu_tutorial/custom_op/build.py (g++ with tf.sysconfig flags).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
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
// Rejects only what the static shapes prove wrong: alpha with more axes than
// x, or an axis where alpha's size is neither 1 nor x's. An unknown size
// proves nothing; the kernel checks it when it runs.
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
  for (int k = 0; k < alpha_rank; ++k) {
    DimensionHandle a = c->Dim(alpha, k);
    DimensionHandle d = c->Dim(x, x_rank - alpha_rank + k);
    if (!c->ValueKnown(a) || c->Value(a) == 1 || !c->ValueKnown(d)) continue;
    if (c->Value(d) != c->Value(a)) {
      return error("each axis of alpha must be 1 or the size of x's axis");
    }
  }
  return absl::OkStatus();
}

REGISTER_OP("PreluTutorial>Prelu")
    .Input("x: T")
    .Input("alpha: Talpha")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Talpha: {half, bfloat16, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckAlphaShape(c, c->input(0), c->input(1)));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("PReLU: x where x > 0, else alpha * x; alpha broadcasts to x.");

REGISTER_OP("PreluTutorial>PreluGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("alpha: Talpha")
    .Output("dx: T")
    .Output("dalpha: Talpha")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Talpha: {half, bfloat16, float, double}")
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
// x as lines of `inner` elements. Adjacent axes of x that alpha either keeps
// (alpha's size is x's) or shares (size 1) are merged; the last merged axis
// is the line. If alpha keeps it, a line meets `inner` consecutive alphas
// (inner_kept); otherwise a whole line shares one alpha. Where a line's
// alphas start follows from its index by strides over the other merged axes,
// so alpha's kept axes need not be next to each other.
struct Layout {
  int64_t lines = 1;
  int64_t inner = 1;
  bool inner_kept = false;
  int64_t alpha_size = 1;  // product of the kept sizes
  // The merged axes before the line's, outermost first.
  std::vector<int64_t> sizes;
  std::vector<int64_t> alpha_strides;  // 0 on a shared axis
  std::vector<int64_t> line_strides;   // lines per step along the axis
  // Every line starts at alpha[0] (channels last, one shared alpha): the
  // common case skips the divisions below.
  bool lines_start_at_0 = true;

  // Where the alphas of line `line` start.
  int64_t AlphaOffset(int64_t line) const {
    if (lines_start_at_0) return 0;
    int64_t offset = 0;
    for (int j = static_cast<int>(sizes.size()) - 1; j >= 0 && line > 0; --j) {
      offset += (line % sizes[j]) * alpha_strides[j];
      line /= sizes[j];
    }
    return offset;
  }

  // The `outer`-th line (counting in order) whose alpha is alpha[k], when
  // the line shares one alpha (!inner_kept).
  int64_t LineOf(int64_t k, int64_t outer) const {
    int64_t line = 0;
    for (int j = static_cast<int>(sizes.size()) - 1; j >= 0; --j) {
      int64_t& index = alpha_strides[j] != 0 ? k : outer;
      line += (index % sizes[j]) * line_strides[j];
      index /= sizes[j];
    }
    return line;
  }
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
  for (int k = 0; k < alpha_rank; ++k) {
    const int64_t a = alpha.dim_size(k);
    if (a != 1 && a != x.dim_size(offset + k)) {
      return error("each axis of alpha must be 1 or the size of x's axis");
    }
  }
  *layout = Layout();
  // Merge adjacent axes of the same kind; axes of size 1 join any run.
  std::vector<int64_t> sizes;
  std::vector<bool> kept;
  for (int k = 0; k < x_rank; ++k) {
    const int64_t size = x.dim_size(k);
    if (size == 1) continue;
    const bool keeps = k >= offset && alpha.dim_size(k - offset) != 1;
    if (!sizes.empty() && kept.back() == keeps) {
      sizes.back() *= size;
    } else {
      sizes.push_back(size);
      kept.push_back(keeps);
    }
  }
  if (!sizes.empty()) {
    layout->inner = sizes.back();
    layout->inner_kept = kept.back();
    sizes.pop_back();
    kept.pop_back();
  }
  const int merged = static_cast<int>(sizes.size());
  layout->sizes = sizes;
  layout->alpha_strides.assign(merged, 0);
  layout->line_strides.assign(merged, 1);
  int64_t alpha_stride = layout->inner_kept ? layout->inner : 1;
  int64_t line_stride = 1;
  for (int j = merged - 1; j >= 0; --j) {
    if (kept[j]) {
      layout->alpha_strides[j] = alpha_stride;
      layout->lines_start_at_0 = false;
      alpha_stride *= sizes[j];
    }
    layout->line_strides[j] = line_stride;
    line_stride *= sizes[j];
  }
  layout->lines = line_stride;
  layout->alpha_size = alpha_stride;
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
// exceptions, which TensorFlow never reads.
//
// Wide<T, Ta> is the dtype of products and sums: float, or double if x or
// alpha is double. A product is rounded once, from Wide to T.
template <typename T, typename Ta>
struct Wide {
  using type = float;
};
template <typename Ta>
struct Wide<double, Ta> {
  using type = double;
};
template <typename T>
struct Wide<T, double> {
  using type = double;
};
template <>
struct Wide<double, double> {
  using type = double;
};

// PRELU_HOT marks the functions that run the loops. With g++ on x86-64
// Linux it compiles each twice, for the baseline x86-64 (16-byte SSE
// vectors) and for AVX2 (32-byte vectors), and the loader picks the AVX2
// clone on a CPU that has it (function multi-versioning; g++'s
// -fopt-info-vec lists both). TensorFlow's own kernels get the same effect
// from Eigen, compiled for several instruction sets. Elsewhere it is empty.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__ELF__)
#define PRELU_HOT __attribute__((target_clones("avx2", "default")))
#else
#define PRELU_HOT
#endif

// y = prelu(x) on one line whose alphas are consecutive (inner_kept).
template <typename T, typename Ta, typename W = typename Wide<T, Ta>::type>
void ForwardRow(const T* __restrict x, const Ta* __restrict alpha,
                T* __restrict y, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const W product = static_cast<W>(alpha[k]) * static_cast<W>(v);
    const T scaled = static_cast<T>(product);
    y[k] = v > T(0) ? v : scaled;
  }
}

// y = prelu(x) on a line of elements that share one alpha.
template <typename T, typename W>
void ForwardRun(const T* __restrict x, const W alpha, T* __restrict y,
                int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const T scaled = static_cast<T>(alpha * static_cast<W>(v));
    y[k] = v > T(0) ? v : scaled;
  }
}

// dx on one line with consecutive alphas, and dalpha's terms added to the
// line's own partial sums: each alpha keeps its own sum, no reduction
// across SIMD lanes is needed.
template <typename T, typename Ta, typename W = typename Wide<T, Ta>::type>
void BackwardRow(const T* __restrict dy, const T* __restrict x,
                 const Ta* __restrict alpha, T* __restrict dx,
                 W* __restrict partial, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const T v = x[k];
    const T d = dy[k];
    const W product = static_cast<W>(alpha[k]) * static_cast<W>(d);
    const T scaled = static_cast<T>(product);
    const W term = static_cast<W>(d) * (v > T(0) ? W(0) : static_cast<W>(v));
    dx[k] = v > T(0) ? d : scaled;
    partial[k] += term;
  }
}

// dx on a line that shares one alpha, and dalpha's terms summed into
// kLanes fixed lanes (element k goes to lane k % kLanes): the order of the
// additions is fixed, so the sum is deterministic and still vectorizes.
// Not inlined: inside the tile loop below, g++ no longer vectorizes it.
constexpr int kLanes = 16;

template <typename T, typename W>
__attribute__((noinline)) PRELU_HOT void BackwardRun(
    const T* __restrict dy, const T* __restrict x, const W alpha,
    T* __restrict dx, W* __restrict lanes, int64_t n) {
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const T v = x[k + l];
      const T d = dy[k + l];
      const T scaled = static_cast<T>(alpha * static_cast<W>(d));
      dx[k + l] = v > T(0) ? d : scaled;
      lanes[l] += static_cast<W>(d) * (v > T(0) ? W(0) : static_cast<W>(v));
    }
  }
  for (int l = 0; k < n; ++k, ++l) {
    const T v = x[k];
    const T d = dy[k];
    const T scaled = static_cast<T>(alpha * static_cast<W>(d));
    dx[k] = v > T(0) ? d : scaled;
    lanes[l] += static_cast<W>(d) * (v > T(0) ? W(0) : static_cast<W>(v));
  }
}
// Tiles [begin, end) of the backward pass where alpha's values run along
// the lines (inner_kept): each tile is rows_per_block lines times `width`
// columns, and adds its dalpha terms to the partial sums of its block of
// lines, partial + block * alpha_size.
template <typename T, typename Ta, typename W>
PRELU_HOT void RowTiles(const T* dy, const T* x, const Ta* alpha, T* dx,
                        const Layout& layout, W* partial,
                        int64_t rows_per_block, int64_t width, int64_t begin,
                        int64_t end) {
  const int64_t rows = layout.lines;
  const int64_t columns = layout.inner;
  const int64_t column_blocks = (columns + width - 1) / width;
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t block = tile / column_blocks;
    const int64_t c0 = (tile % column_blocks) * width;
    const int64_t n = std::min(width, columns - c0);
    const int64_t r1 = std::min(rows, (block + 1) * rows_per_block);
    W* part = partial + block * layout.alpha_size + c0;
    for (int64_t r = block * rows_per_block; r < r1; ++r) {
      const int64_t i = r * columns + c0;
      const int64_t start = layout.AlphaOffset(r);
      BackwardRow(dy + i, x + i, alpha + start + c0, dx + i, part + start, n);
    }
  }
}

// The lines of x that cover elements [begin, end) of the flat array, each
// cut where it ends: the work of one thread in the forward kernel.
template <typename T, typename Ta, typename W = typename Wide<T, Ta>::type>
PRELU_HOT void ForwardLines(const Layout& layout, const T* x, const Ta* alpha,
                            T* y, int64_t begin, int64_t end) {
  const int64_t inner = layout.inner;
  // One division per block; each later line starts where the last stopped.
  for (int64_t i = begin, line = begin / inner; i < end; ++line) {
    const int64_t stop = std::min(end, (line + 1) * inner);
    const Ta* line_alpha = alpha + layout.AlphaOffset(line);
    if (layout.inner_kept) {
      ForwardRow(x + i, line_alpha + (i - line * inner), y + i, stop - i);
    } else {
      ForwardRun(x + i, static_cast<W>(*line_alpha), y + i, stop - i);
    }
    i = stop;
  }
}
// [/loops]

// ---------------------------------------------------------------------------
// [forward]
template <typename T, typename Ta>
class PreluOp : public OpKernel {
 public:
  using W = typename Wide<T, Ta>::type;

  explicit PreluOp(OpKernelConstruction* context) : OpKernel(context) {}

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
    const Ta* alpha_data = alpha.flat<Ta>().data();
    T* y_data = y->flat<T>().data();
    auto work = [&layout, x_data, alpha_data, y_data](int64_t begin,
                                                      int64_t end) {
      ForwardLines(layout, x_data, alpha_data, y_data, begin, end);
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
// bits on 1 thread or 64. The sums are in the wide dtype (float32 for 16-bit
// inputs), rounded once to alpha's dtype.
constexpr int64_t kTileElements = 1 << 14;
constexpr int64_t kMaxPartials = 1 << 16;

template <typename T, typename Ta>
class PreluGradOp : public OpKernel {
 public:
  using W = typename Wide<T, Ta>::type;

  explicit PreluGradOp(OpKernelConstruction* context) : OpKernel(context) {}

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
                    alpha.flat<Ta>().data(), dx->flat<T>().data(), layout};
    std::vector<W> sums(alpha.NumElements(), W(0));
    if (x.NumElements() > 0) {
      if (layout.inner_kept) {
        Rows(context, args, sums.data());
      } else {
        Runs(context, args, sums.data());
      }
    }
    Ta* dalpha_data = dalpha->flat<Ta>().data();
    for (size_t k = 0; k < sums.size(); ++k) {
      dalpha_data[k] = static_cast<Ta>(sums[k]);
    }
  }

 private:
  struct Args {
    const T* dy;
    const T* x;
    const Ta* alpha;
    T* dx;
    const Layout& layout;
  };

  static void Run(OpKernelContext* context, int64_t tiles, int64_t tile_cost,
                  const std::function<void(int64_t, int64_t)>& work) {
    const auto& threads = *context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads.num_threads, threads.workers, tiles, tile_cost,
                      work);
  }

  // inner_kept: lines of `inner` consecutive alphas. A tile is a block of
  // lines times a block of columns, with one partial sum per alpha and line
  // block.
  static void Rows(OpKernelContext* context, const Args& a, W* sums) {
    const int64_t rows = a.layout.lines;
    const int64_t columns = a.layout.inner;
    const int64_t alphas = a.layout.alpha_size;
    const int64_t rows_per_block = std::max(
        {int64_t{1}, (kTileElements + columns - 1) / columns,
         (rows * alphas + kMaxPartials - 1) / kMaxPartials});
    const int64_t row_blocks = (rows + rows_per_block - 1) / rows_per_block;
    const int64_t width = std::min(
        columns, std::max(int64_t{kLanes}, kTileElements / rows_per_block));
    const int64_t column_blocks = (columns + width - 1) / width;
    std::vector<W> partial(row_blocks * alphas, W(0));
    Run(context, row_blocks * column_blocks, 2 * rows_per_block * width,
        [&](int64_t begin, int64_t end) {
          RowTiles(a.dy, a.x, a.alpha, a.dx, a.layout, partial.data(),
                   rows_per_block, width, begin, end);
        });
    for (int64_t block = 0; block < row_blocks; ++block) {
      const W* part = partial.data() + block * alphas;
      for (int64_t k = 0; k < alphas; ++k) sums[k] += part[k];
    }
  }

  // !inner_kept: lines of `inner` elements that share one alpha. A tile is
  // a block of the lines of one alpha, cut into chunks of the line, with one
  // partial sum.
  static void Runs(OpKernelContext* context, const Args& a, W* sums) {
    const int64_t alphas = a.layout.alpha_size;
    const int64_t outer = a.layout.lines / alphas;  // lines per alpha
    const int64_t inner = a.layout.inner;
    const int64_t chunk = std::min(inner, kTileElements);
    const int64_t chunks = (inner + chunk - 1) / chunk;
    const int64_t outer_per_block = std::max(int64_t{1}, kTileElements / chunk);
    const int64_t outer_blocks =
        (outer + outer_per_block - 1) / outer_per_block;
    // Tile index = ((block * alphas) + k) * chunks + j.
    const int64_t tiles = outer_blocks * alphas * chunks;
    std::vector<W> partial(tiles, W(0));
    Run(context, tiles, 2 * outer_per_block * chunk,
        [&](int64_t begin, int64_t end) {
          for (int64_t tile = begin; tile < end; ++tile) {
            const int64_t j = tile % chunks;
            const int64_t k = (tile / chunks) % alphas;
            const int64_t block = tile / (chunks * alphas);
            const int64_t i0 = j * chunk;
            const int64_t n = std::min(chunk, inner - i0);
            const int64_t o1 = std::min(outer, (block + 1) * outer_per_block);
            const W alpha = static_cast<W>(a.alpha[k]);
            W lanes[kLanes] = {};
            for (int64_t o = block * outer_per_block; o < o1; ++o) {
              const int64_t i = a.layout.LineOf(k, o) * inner + i0;
              BackwardRun(a.dy + i, a.x + i, alpha, a.dx + i, lanes, n);
            }
            W total = W(0);
            for (int l = 0; l < kLanes; ++l) total += lanes[l];
            partial[tile] = total;
          }
        });
    for (int64_t tile = 0; tile < tiles; ++tile) {
      sums[(tile / chunks) % alphas] += partial[tile];
    }
  }
};
// [/backward]

// ---------------------------------------------------------------------------
// [kernels]
// One kernel per pair of dtypes (x's, alpha's): 16 of each op.
#define REGISTER_PRELU_KERNELS(type, alpha_type)                       \
  REGISTER_KERNEL_BUILDER(Name("PreluTutorial>Prelu")                  \
                              .Device(tensorflow::DEVICE_CPU)          \
                              .TypeConstraint<type>("T")               \
                              .TypeConstraint<alpha_type>("Talpha"),   \
                          PreluOp<type, alpha_type>);                  \
  REGISTER_KERNEL_BUILDER(Name("PreluTutorial>PreluGrad")              \
                              .Device(tensorflow::DEVICE_CPU)          \
                              .TypeConstraint<type>("T")               \
                              .TypeConstraint<alpha_type>("Talpha"),   \
                          PreluGradOp<type, alpha_type>)

#define REGISTER_PRELU_KERNELS_FOR_X(type)          \
  REGISTER_PRELU_KERNELS(type, Eigen::half);        \
  REGISTER_PRELU_KERNELS(type, Eigen::bfloat16);    \
  REGISTER_PRELU_KERNELS(type, float);              \
  REGISTER_PRELU_KERNELS(type, double)

REGISTER_PRELU_KERNELS_FOR_X(Eigen::half);
REGISTER_PRELU_KERNELS_FOR_X(Eigen::bfloat16);
REGISTER_PRELU_KERNELS_FOR_X(float);
REGISTER_PRELU_KERNELS_FOR_X(double);
#undef REGISTER_PRELU_KERNELS_FOR_X
#undef REGISTER_PRELU_KERNELS
// [/kernels]

}  // namespace prelu_tutorial
