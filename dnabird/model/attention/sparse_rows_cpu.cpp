// Forward and backward passes of the ordinary (non-global) query blocks of BigBird attention
// on the CPU, float32.
//
// Built and loaded by dnabird/model/attention/cpu_kernel.py (plain C ABI, called through
// ctypes with one argument struct, SparseRowsArgs below); BLAS is the sgemm_ that PyTorch's own CPU library exports (MKL in the PyPI wheels),
// threads are OpenMP (the runtime PyTorch has already loaded).
//
// For every (batch x head) `bh` and ordinary query block `i`, with b = block size, D = head
// width, L = tokens, NB = L / b blocks:
//   1. the row's visible key blocks (its slots minus the invalid ones) are sorted and merged
//      into runs of consecutive blocks, so each run is one contiguous [len*b, D] slab of K and V
//      (no gather copy);
//   2. scores  S[b, T] = scale * Q_i K_run^T, one sgemm per run, T = keys of the row; padded
//      keys get the float minimum as score;
//   forward:
//   3. a row softmax in place (exp by a vectorisable polynomial), lse = max + log(sum);
//   4. O_i[b, D] = P V_run summed over runs (sgemm with beta = 1), rows scaled by 1 / sum;
//   backward (FlashAttention's, from the forward's lse: P = exp(S - lse)):
//   3. dP = dO_i V_run^T, dS = P (dP - rowsum(dO_i * O_i));
//   4. dQ_i = scale dS K_run (summed over runs), dK_run += scale dS^T Q_i, dV_run += P^T dO_i.
// Each thread owns [b, T_max] score buffers, so a row block's scores stay in L2 cache. The
// forward splits the work by (bh, query block); the backward by bh, since the query blocks of
// one head add into the same key and value gradients.

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

namespace {

// C (row-major, rows x cols, leading dimension ldc) = alpha * A B^T + beta * C, where A is
// row-major [rows, inner] (lda) and B row-major [cols, inner] (ldb). Column-major sgemm sees
// C^T = B A^T.
void gemm_abt(int rows, int cols, int inner, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  const char trans = 'T', keep = 'N';
  sgemm_(&trans, &keep, &cols, &rows, &inner, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// C (row-major, rows x cols, ldc) = alpha * A B + beta * C, A row-major [rows, inner] (lda),
// B row-major [inner, cols] (ldb). Column-major: C^T = B^T A^T.
void gemm_ab(int rows, int cols, int inner, float alpha, const float* a, int lda,
             const float* b, int ldb, float beta, float* c, int ldc) {
  const char keep = 'N';
  sgemm_(&keep, &keep, &cols, &rows, &inner, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// C (row-major, rows x cols, ldc) = alpha * A^T B + beta * C, A row-major [inner, rows] (lda),
// B row-major [inner, cols] (ldb). Column-major: C^T = B^T A.
void gemm_atb(int rows, int cols, int inner, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  const char trans = 'T', keep = 'N';
  sgemm_(&keep, &trans, &cols, &rows, &inner, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

// exp(x) with relative error < 1e-7 (measured) for -87.3 <= x <= 88 (the softmax passes
// x <= 0; the backward's x = score - lse may exceed 0 by rounding); 0 below -87.3, where float
// exp underflows.
// Written so the compiler vectorises the loops that call it.
inline float fast_exp(float x) {
  const float clamped = std::max(x, -87.3f);
  const float n = std::nearbyint(clamped * 1.44269504f);  // round(x / ln 2)
  const float r = std::fma(n, -0.693359375f, clamped);     // x - n ln2, in two parts
  const float f = std::fma(n, 2.12194440e-4f, r);
  float p = 1.98412698e-4f;  // Taylor to degree 7 on |f| <= ln2 / 2
  p = std::fma(p, f, 1.38888889e-3f);
  p = std::fma(p, f, 8.33333333e-3f);
  p = std::fma(p, f, 4.16666667e-2f);
  p = std::fma(p, f, 1.66666667e-1f);
  p = std::fma(p, f, 0.5f);
  p = std::fma(p, f, 1.0f);
  p = std::fma(p, f, 1.0f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

// Largest of x[0 .. count-1], 16 independent lanes so the compiler vectorises it (a single
// running maximum is a serial dependency chain).
float row_max(const float* x, int64_t count) {
  constexpr int64_t kLanes = 16;
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -FLT_MAX);
  int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = lanes[l] < x[j + l] ? x[j + l] : lanes[l];
  }
  for (; j < count; ++j) lanes[0] = std::max(lanes[0], x[j]);
  return *std::max_element(lanes, lanes + kLanes);
}

struct Run {
  int64_t block;  // first key block
  int64_t count;  // consecutive blocks
};

// The row's visible key blocks as runs of consecutive blocks (at most `slots` runs).
int key_runs(const int64_t* slot_block, const uint8_t* slot_valid, int slots, Run* runs) {
  int64_t blocks[64];
  int count = 0;
  for (int s = 0; s < slots; ++s) {
    if (slot_valid[s]) blocks[count++] = slot_block[s];
  }
  std::sort(blocks, blocks + count);
  int num_runs = 0;
  for (int s = 0; s < count; ++s) {
    if (s > 0 && blocks[s] == blocks[s - 1]) continue;  // a block listed twice is seen once
    if (num_runs > 0 && blocks[s] == runs[num_runs - 1].block + runs[num_runs - 1].count) {
      ++runs[num_runs - 1].count;
    } else {
      runs[num_runs++] = Run{blocks[s], 1};
    }
  }
  return num_runs;
}

// Sizes, pattern and mask of one call (see the exported functions for the layouts).
struct Problem {
  int64_t heads, length, dim, block, rows, slots;
  const int64_t* slot_block;
  const uint8_t* slot_valid;
  const uint8_t* key_keep;
  float scale;

  int64_t max_keys() const { return slots * block; }
  // Offset of query block `row` (counted from the first ordinary one) of head-batch `bh` in a
  // row tensor, and of token 0 of `bh` in a [BH, L, D] tensor.
  int64_t row_offset(int64_t bh, int64_t row) const { return (bh * length + row * block) * dim; }
  int64_t head_offset(int64_t bh) const { return bh * length * dim; }

  int row_runs(int64_t bh, int64_t row, Run* runs) const {
    const int64_t at = ((bh % heads) * rows + row) * slots;
    return key_runs(slot_block + at, slot_valid + at, static_cast<int>(slots), runs);
  }

  // Scaled scores of query block `q_row` ([b, D]) against the runs of K into s ([b, T],
  // leading dimension max_keys()), padded keys at -FLT_MAX; returns T.
  int64_t scores(int64_t bh, const float* q_row, const float* k_head, const Run* runs,
                 int num_runs, float* s) const {
    const uint8_t* keep = key_keep ? key_keep + (bh / heads) * length : nullptr;
    const int64_t ld = max_keys();
    int64_t keys = 0;
    for (int r = 0; r < num_runs; ++r) {
      const int64_t width = runs[r].count * block;
      gemm_abt(static_cast<int>(block), static_cast<int>(width), static_cast<int>(dim), scale,
               q_row, static_cast<int>(dim), k_head + runs[r].block * block * dim,
               static_cast<int>(dim), 0.0f, s + keys, static_cast<int>(ld));
      if (keep) {
        const uint8_t* run_keep = keep + runs[r].block * block;
        for (int64_t j = 0; j < width; ++j) {
          if (run_keep[j]) continue;
          for (int64_t t = 0; t < block; ++t) s[t * ld + keys + j] = -FLT_MAX;
        }
      }
      keys += width;
    }
    return keys;
  }
};

}  // namespace

// The arguments of both exported functions, in one struct mirrored field for field by
// cpu_kernel.KernelArgs (a ctypes.Structure). The caller sets `size` to sizeof(SparseRowsArgs)
// and `version` to kArgsVersion; a call with other values is refused (returns 2) before
// anything else is read, and the loader compares dnabird_sparse_rows_args_layout() (every
// field's offset) with its own once. Raise kArgsVersion with any change to the fields.
//
// batch_heads = B * H; k, v: [BH, L, D] float32, contiguous; "row tensors" (q, out, grad_out,
// grad_q) point at the first ordinary query row of a [BH, L, D] float32 tensor (head stride
// L * D) and hold `rows` query blocks of `block` tokens; lse: [BH, rows * block] log-sum-exp of
// each row's scaled scores; slot_block / slot_valid: [H, rows, slots] key block of every slot
// and whether it is a real key (invalid slots are skipped); key_keep: [B, L] uint8 (1 = real
// token) or null.
struct SparseRowsArgs {
  uint64_t size;     // sizeof(SparseRowsArgs)
  uint64_t version;  // kArgsVersion
  const float* q;
  const float* k;
  const float* v;
  float* out;             // forward: written; backward: the forward's output
  float* lse;             // forward: written; backward: the forward's
  const float* grad_out;  // backward only (null in the forward call)
  float* grad_q;          // backward: written (a row tensor)
  float* grad_k;          // backward: added into ([BH, L, D], zeroed by the caller)
  float* grad_v;          // backward: added into, like grad_k
  int64_t batch_heads, heads, length, dim, block, rows, slots;
  const int64_t* slot_block;
  const uint8_t* slot_valid;
  const uint8_t* key_keep;
  float scale;
  int32_t threads;
};

constexpr uint64_t kArgsVersion = 1;

// 0 when the call can go ahead; 2: `args` is not a SparseRowsArgs of this size and version;
// 1: more than 64 slots; 3: a pointer the pass needs is null.
static int check_args(const SparseRowsArgs* args, bool backward) {
  if (args == nullptr || args->size != sizeof(SparseRowsArgs) || args->version != kArgsVersion) {
    return 2;
  }
  if (args->slots > 64) return 1;
  const bool common = args->q && args->k && args->v && args->out && args->lse &&
                      args->slot_block && args->slot_valid;
  const bool gradients = args->grad_out && args->grad_q && args->grad_k && args->grad_v;
  return common && (gradients || !backward) ? 0 : 3;
}

extern "C" {

// "name:offset," for every field of SparseRowsArgs, then "sizeof:N,version:V".
const char* dnabird_sparse_rows_args_layout() {
  static const std::string layout = [] {
    std::string text;
#define DNABIRD_FIELD(name) \
  text += std::string(#name) + ":" + std::to_string(offsetof(SparseRowsArgs, name)) + ",";
    DNABIRD_FIELD(size) DNABIRD_FIELD(version) DNABIRD_FIELD(q) DNABIRD_FIELD(k) DNABIRD_FIELD(v)
    DNABIRD_FIELD(out) DNABIRD_FIELD(lse) DNABIRD_FIELD(grad_out) DNABIRD_FIELD(grad_q)
    DNABIRD_FIELD(grad_k) DNABIRD_FIELD(grad_v) DNABIRD_FIELD(batch_heads) DNABIRD_FIELD(heads)
    DNABIRD_FIELD(length) DNABIRD_FIELD(dim) DNABIRD_FIELD(block) DNABIRD_FIELD(rows)
    DNABIRD_FIELD(slots) DNABIRD_FIELD(slot_block) DNABIRD_FIELD(slot_valid)
    DNABIRD_FIELD(key_keep) DNABIRD_FIELD(scale) DNABIRD_FIELD(threads)
#undef DNABIRD_FIELD
    return text + "sizeof:" + std::to_string(sizeof(SparseRowsArgs)) +
           ",version:" + std::to_string(kArgsVersion);
  }();
  return layout.c_str();
}

// Both passes return check_args()'s code (0: done).

// Writes the ordinary query blocks of `out` and their `lse`.
int dnabird_sparse_rows_forward_f32(const SparseRowsArgs* args) {
  if (const int code = check_args(args, false)) return code;
  const SparseRowsArgs& a = *args;
  const float *q = a.q, *k = a.k, *v = a.v;
  float *out = a.out, *lse = a.lse;
  const int64_t batch_heads = a.batch_heads, dim = a.dim, block = a.block, rows = a.rows;
  const int threads = a.threads;
  const Problem p{a.heads, a.length, dim, block, rows, a.slots, a.slot_block, a.slot_valid,
                  a.key_keep, a.scale};
  const int64_t ld = p.max_keys();
  const int64_t tasks = batch_heads * rows;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(block * ld));
    std::vector<float> inverse_sum(static_cast<size_t>(block));
    Run runs[64];
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t bh = task / rows, row = task % rows;
      const int num_runs = p.row_runs(bh, row, runs);
      float* o_row = out + p.row_offset(bh, row);
      float* lse_row = lse + (bh * rows + row) * block;
      if (num_runs == 0) {  // sees no key at all: zeros (never the case for BigBird rows)
        std::fill(o_row, o_row + block * dim, 0.0f);
        std::fill(lse_row, lse_row + block, -FLT_MAX);
        continue;
      }
      float* s = scores.data();
      const int64_t keys = p.scores(bh, q + p.row_offset(bh, row), k + p.head_offset(bh), runs,
                                    num_runs, s);
      for (int64_t t = 0; t < block; ++t) {  // softmax numerators in place
        float* line = s + t * ld;
        const float top = row_max(line, keys);
        float total = 0.0f;
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < keys; ++j) {
          line[j] = fast_exp(line[j] - top);
          total += line[j];
        }
        inverse_sum[t] = 1.0f / total;
        lse_row[t] = top + std::log(total);
      }
      const float* v_head = v + p.head_offset(bh);
      int64_t offset = 0;  // output: P V summed over runs
      for (int r = 0; r < num_runs; ++r) {
        const int64_t width = runs[r].count * block;
        gemm_ab(static_cast<int>(block), static_cast<int>(dim), static_cast<int>(width), 1.0f,
                s + offset, static_cast<int>(ld), v_head + runs[r].block * block * dim,
                static_cast<int>(dim), r == 0 ? 0.0f : 1.0f, o_row, static_cast<int>(dim));
        offset += width;
      }
      for (int64_t t = 0; t < block; ++t) {
#pragma omp simd
        for (int64_t d = 0; d < dim; ++d) o_row[t * dim + d] *= inverse_sum[t];
      }
    }
  }
  return 0;
}

// Gradients of the ordinary query blocks: writes grad_q and adds into grad_k, grad_v. out and
// lse are the forward's.
int dnabird_sparse_rows_backward_f32(const SparseRowsArgs* args) {
  if (const int code = check_args(args, true)) return code;
  const SparseRowsArgs& a = *args;
  const float *q = a.q, *k = a.k, *v = a.v, *out = a.out, *grad_out = a.grad_out, *lse = a.lse;
  float *grad_q = a.grad_q, *grad_k = a.grad_k, *grad_v = a.grad_v;
  const int64_t batch_heads = a.batch_heads, dim = a.dim, block = a.block, rows = a.rows;
  const float scale = a.scale;
  const int threads = a.threads;
  const Problem p{a.heads, a.length, dim, block, rows, a.slots, a.slot_block, a.slot_valid,
                  a.key_keep, a.scale};
  const int64_t ld = p.max_keys();
  const int ild = static_cast<int>(ld), idim = static_cast<int>(dim), iblock = static_cast<int>(block);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> probs(static_cast<size_t>(block * ld));
    std::vector<float> grad_scores(static_cast<size_t>(block * ld));
    std::vector<float> delta(static_cast<size_t>(block));
    Run runs[64];
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < batch_heads; ++bh) {
      const float* k_head = k + p.head_offset(bh);
      const float* v_head = v + p.head_offset(bh);
      float* grad_k_head = grad_k + p.head_offset(bh);
      float* grad_v_head = grad_v + p.head_offset(bh);
      for (int64_t row = 0; row < rows; ++row) {
        const int num_runs = p.row_runs(bh, row, runs);
        const float* q_row = q + p.row_offset(bh, row);
        const float* o_row = out + p.row_offset(bh, row);
        const float* g_row = grad_out + p.row_offset(bh, row);
        float* grad_q_row = grad_q + p.row_offset(bh, row);
        if (num_runs == 0) {
          std::fill(grad_q_row, grad_q_row + block * dim, 0.0f);
          continue;
        }
        float* pr = probs.data();
        float* ds = grad_scores.data();
        const int64_t keys = p.scores(bh, q_row, k_head, runs, num_runs, pr);
        const float* lse_row = lse + (bh * rows + row) * block;
        for (int64_t t = 0; t < block; ++t) {
          float* line = pr + t * ld;
#pragma omp simd
          for (int64_t j = 0; j < keys; ++j) line[j] = fast_exp(line[j] - lse_row[t]);
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < dim; ++d) dot += g_row[t * dim + d] * o_row[t * dim + d];
          delta[t] = dot;
        }
        int64_t offset = 0;  // dP = dO V^T
        for (int r = 0; r < num_runs; ++r) {
          const int64_t width = runs[r].count * block;
          gemm_abt(iblock, static_cast<int>(width), idim, 1.0f, g_row, idim,
                   v_head + runs[r].block * block * dim, idim, 0.0f, ds + offset, ild);
          offset += width;
        }
        for (int64_t t = 0; t < block; ++t) {  // dS = P (dP - delta)
          float* grad_line = ds + t * ld;
          const float* prob_line = pr + t * ld;
#pragma omp simd
          for (int64_t j = 0; j < keys; ++j) {
            grad_line[j] = prob_line[j] * (grad_line[j] - delta[t]);
          }
        }
        offset = 0;
        for (int r = 0; r < num_runs; ++r) {
          const int64_t width = runs[r].count * block;
          const int64_t first_key = runs[r].block * block * dim;
          gemm_ab(iblock, idim, static_cast<int>(width), scale, ds + offset, ild,
                  k_head + first_key, idim, r == 0 ? 0.0f : 1.0f, grad_q_row, idim);
          gemm_atb(static_cast<int>(width), idim, iblock, scale, ds + offset, ild, q_row, idim,
                   1.0f, grad_k_head + first_key, idim);
          gemm_atb(static_cast<int>(width), idim, iblock, 1.0f, pr + offset, ild, g_row, idim,
                   1.0f, grad_v_head + first_key, idim);
          offset += width;
        }
      }
    }
  }
  return 0;
}

}  // extern "C"
