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
//
// A bfloat16 forward (inference: no backward) where the compiler targets AVX-512 BF16: the same
// steps with bfloat16 q, k, v and output, both products by `vdpbf16ps` (pairs of bfloat16
// products added into float32), the scores and the softmax in float32 and P rounded to
// bfloat16 for P V, as fused bfloat16 attention kernels do. Per round of up to `threads`
// heads, K and V are first repacked so that a vector load holds 16 keys' (K) or 16 channels'
// (V) bfloat16 pairs, the operand layout of `vdpbf16ps`: K as [NB][D/2][b][2] (channels 2p,
// 2p+1 of key j side by side), V as [L/2][D][2] (channel d of keys 2m, 2m+1 side by side).

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
#include <immintrin.h>
#define DNABIRD_BF16 1
#else
#define DNABIRD_BF16 0
#endif

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
    const int64_t ld = max_keys();
    int64_t keys = 0;
    for (int r = 0; r < num_runs; ++r) {
      const int64_t width = runs[r].count * block;
      gemm_abt(static_cast<int>(block), static_cast<int>(width), static_cast<int>(dim), scale,
               q_row, static_cast<int>(dim), k_head + runs[r].block * block * dim,
               static_cast<int>(dim), 0.0f, s + keys, static_cast<int>(ld));
      keys += width;
    }
    mask_padded_keys(bh, runs, num_runs, s);
    return keys;
  }

  // Sets the scores s ([b, T], leading dimension max_keys()) of padded keys to -FLT_MAX.
  void mask_padded_keys(int64_t bh, const Run* runs, int num_runs, float* s) const {
    if (!key_keep) return;
    const uint8_t* keep = key_keep + (bh / heads) * length;
    const int64_t ld = max_keys();
    int64_t keys = 0;
    for (int r = 0; r < num_runs; ++r) {
      const int64_t width = runs[r].count * block;
      const uint8_t* run_keep = keep + runs[r].block * block;
      for (int64_t j = 0; j < width; ++j) {
        if (run_keep[j]) continue;
        for (int64_t t = 0; t < block; ++t) s[t * ld + keys + j] = -FLT_MAX;
      }
      keys += width;
    }
  }

  // Softmax numerators of the scores s ([b, keys], leading dimension max_keys()) in place:
  // exp(s - row maximum); inverse_sum[t] = 1 / row sum, lse_row[t] = log-sum-exp of row t.
  void softmax_numerators(float* s, int64_t keys, float* inverse_sum, float* lse_row) const {
    const int64_t ld = max_keys();
    for (int64_t t = 0; t < block; ++t) {
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
  }
};

#if DNABIRD_BF16
// bfloat16 values are handled as their bits (uint16_t, the upper half of a float32).

// The 32-bit word holding the bfloat16 pair at `pair` (two consecutive values).
inline int32_t load_pair(const uint16_t* pair) {
  int32_t word;
  std::memcpy(&word, pair, sizeof word);
  return word;
}

// K of one head ([L, D] bfloat16, row-major) repacked for the score products: per block a
// [D/2][b] table of channel pairs, i.e. [NB][D/2][b][2] (a transpose of 32-bit words).
void pack_key_block(const uint16_t* k_block, int64_t dim, int64_t block, uint16_t* packed) {
  const int64_t pairs = dim / 2;
  for (int64_t j = 0; j < block; ++j) {
    for (int64_t m = 0; m < pairs; ++m) {
      std::memcpy(packed + (m * block + j) * 2, k_block + j * dim + 2 * m, 2 * sizeof(uint16_t));
    }
  }
}

// V rows of one block ([b, D] bfloat16) repacked for P V: [b/2][D][2], channel d of rows 2m
// and 2m + 1 side by side (D a multiple of 16).
void pack_value_block(const uint16_t* v_block, int64_t dim, int64_t block, uint16_t* packed) {
  for (int64_t m = 0; m < block / 2; ++m) {
    const uint16_t* even = v_block + 2 * m * dim;
    const uint16_t* odd = even + dim;
    for (int64_t d = 0; d < dim; d += 16) {
      const __m512i low = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(even + d)));
      const __m512i high = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(odd + d)));
      _mm512_storeu_si512(packed + (m * dim + d) * 2,
                          _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
    }
  }
}

// s[r, 16c + lane] = scale * (query row r) . (key j0 + 16c + lane) for 4 query rows
// (`q`: [4, D] bfloat16, leading dimension D) and 16 * NV keys of a packed key block
// (`kp`, see pack_key_block), into s (float32, leading dimension ld).
template <int NV>
void score_tile(const uint16_t* q, int64_t dim, const uint16_t* kp, int64_t block, int64_t j0,
                float scale, float* s, int64_t ld) {
  __m512 acc[4][NV];
  for (auto& row : acc) {
    for (auto& lanes : row) lanes = _mm512_setzero_ps();
  }
  for (int64_t m = 0; m < dim / 2; ++m) {
    __m512i keys[NV];
    for (int c = 0; c < NV; ++c) {
      keys[c] = _mm512_loadu_si512(kp + (m * block + j0 + 16 * c) * 2);
    }
    for (int r = 0; r < 4; ++r) {
      const __m512i pair = _mm512_set1_epi32(load_pair(q + r * dim + 2 * m));
      for (int c = 0; c < NV; ++c) {
        acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)pair, (__m512bh)keys[c]);
      }
    }
  }
  const __m512 factor = _mm512_set1_ps(scale);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < NV; ++c) {
      _mm512_storeu_ps(s + r * ld + j0 + 16 * c, _mm512_mul_ps(acc[r][c], factor));
    }
  }
}

// out[r, d0 + 16c + lane] = inverse_sum[r] * sum over the row's keys of P[r, key] V[key, d]
// for 4 rows of P (`probs`: bfloat16, leading dimension ld, keys in run order) and 16 * NV
// channels, V read from its packed blocks (`vp_head`, see pack_value_block); out bfloat16
// with leading dimension D.
template <int NV>
void value_tile(const uint16_t* probs, int64_t ld, const Run* runs, int num_runs,
                const uint16_t* vp_head, int64_t block, int64_t dim, int64_t d0,
                const float* inverse_sum, uint16_t* out) {
  __m512 acc[4][NV];
  for (auto& row : acc) {
    for (auto& lanes : row) lanes = _mm512_setzero_ps();
  }
  int64_t key = 0;
  for (int run = 0; run < num_runs; ++run) {
    const uint16_t* vp = vp_head + runs[run].block * block * dim;
    const int64_t pairs = runs[run].count * block / 2;
    for (int64_t m = 0; m < pairs; ++m, key += 2) {
      __m512i values[NV];
      for (int c = 0; c < NV; ++c) {
        values[c] = _mm512_loadu_si512(vp + (m * dim + d0 + 16 * c) * 2);
      }
      for (int r = 0; r < 4; ++r) {
        const __m512i pair = _mm512_set1_epi32(load_pair(probs + r * ld + key));
        for (int c = 0; c < NV; ++c) {
          acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)pair, (__m512bh)values[c]);
        }
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    const __m512 factor = _mm512_set1_ps(inverse_sum[r]);
    for (int c = 0; c < NV; ++c) {
      const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_mul_ps(acc[r][c], factor));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * dim + d0 + 16 * c),
                          (__m256i)rounded);
    }
  }
}

// Runs TILE<NV> for NV = min(4, remaining / 16): the widest tile that fits.
#define DNABIRD_BY_WIDTH(remaining, TILE, ...)          \
  switch (std::min<int64_t>(4, (remaining) / 16)) {     \
    case 4: TILE<4>(__VA_ARGS__); break;                \
    case 3: TILE<3>(__VA_ARGS__); break;                \
    case 2: TILE<2>(__VA_ARGS__); break;                \
    default: TILE<1>(__VA_ARGS__); break;               \
  }

// Float32 row x (count a multiple of 16) rounded to bfloat16 into y.
void round_to_bf16(const float* x, int64_t count, uint16_t* y) {
  for (int64_t j = 0; j < count; j += 16) {
    const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + j), (__m256i)rounded);
  }
}
#endif  // DNABIRD_BF16

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
// 1: more than 64 slots; 3: a pointer the pass needs is null. (The bfloat16 forward adds 4
// and 5.)
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
      p.softmax_numerators(s, keys, inverse_sum.data(), lse_row);
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

// 1 when this library has the bfloat16 forward (built for a CPU with AVX-512 BF16), else 0.
int dnabird_sparse_rows_has_bf16() { return DNABIRD_BF16; }

// The forward of dnabird_sparse_rows_forward_f32 with bfloat16 q, k, v and out (lse float32):
// see the bfloat16 notes at the top. Returns 4 when built without AVX-512 BF16, 5 unless
// D and b are multiples of 16.
int dnabird_sparse_rows_forward_bf16(const SparseRowsArgs* args) {
  if (const int code = check_args(args, false)) return code;
#if !DNABIRD_BF16
  return 4;
#else
  const SparseRowsArgs& a = *args;
  const int64_t batch_heads = a.batch_heads, length = a.length, dim = a.dim, block = a.block;
  const int64_t rows = a.rows, blocks = length / block;
  if (dim % 16 != 0 || block % 16 != 0) return 5;
  const auto* q = static_cast<const uint16_t*>(static_cast<const void*>(a.q));
  const auto* k = static_cast<const uint16_t*>(static_cast<const void*>(a.k));
  const auto* v = static_cast<const uint16_t*>(static_cast<const void*>(a.v));
  auto* out = static_cast<uint16_t*>(static_cast<void*>(a.out));
  float* lse = a.lse;
  const int threads = a.threads;
  const Problem p{a.heads, length, dim, block, rows, a.slots, a.slot_block, a.slot_valid,
                  a.key_keep, a.scale};
  const int64_t ld = p.max_keys();
  // Heads packed at a time; the buffers are left uninitialised (every value read is packed
  // first): with many threads they are large, 32 heads of 4,096 x 64 are 16 MiB each.
  const int64_t round = std::clamp<int64_t>(threads, 1, std::max<int64_t>(1, batch_heads));
  const size_t packed_size = static_cast<size_t>(round * length * dim);
  const std::unique_ptr<uint16_t[]> k_packed(new uint16_t[packed_size]);
  const std::unique_ptr<uint16_t[]> v_packed(new uint16_t[packed_size]);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(block * ld));
    std::vector<uint16_t> probs(scores.size());
    std::vector<float> inverse_sum(static_cast<size_t>(block));
    Run runs[64];
    for (int64_t first = 0; first < batch_heads; first += round) {
      const int64_t count = std::min(round, batch_heads - first);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < count * blocks; ++item) {
        const int64_t at = item * block * dim;  // head (item / blocks), block (item % blocks)
        pack_key_block(k + p.head_offset(first) + at, dim, block, k_packed.get() + at);
        pack_value_block(v + p.head_offset(first) + at, dim, block, v_packed.get() + at);
      }
#pragma omp for schedule(static)
      for (int64_t task = 0; task < count * rows; ++task) {
        const int64_t slot = task / rows, bh = first + slot, row = task % rows;
        const int num_runs = p.row_runs(bh, row, runs);
        uint16_t* o_row = out + p.row_offset(bh, row);
        float* lse_row = lse + (bh * rows + row) * block;
        if (num_runs == 0) {  // sees no key at all: zeros (never the case for BigBird rows)
          std::fill(o_row, o_row + block * dim, uint16_t{0});
          std::fill(lse_row, lse_row + block, -FLT_MAX);
          continue;
        }
        const uint16_t* q_row = q + p.row_offset(bh, row);
        const uint16_t* kp_head = k_packed.get() + slot * length * dim;
        const uint16_t* vp_head = v_packed.get() + slot * length * dim;
        float* s = scores.data();
        int64_t keys = 0;
        for (int r = 0; r < num_runs; ++r) {
          for (int64_t kb = runs[r].block; kb < runs[r].block + runs[r].count; ++kb) {
            const uint16_t* kp = kp_head + kb * block * dim;
            for (int64_t t = 0; t < block; t += 4) {
              for (int64_t j0 = 0; j0 < block; j0 += 64) {
                DNABIRD_BY_WIDTH(block - j0, score_tile, q_row + t * dim, dim, kp, block, j0,
                                 p.scale, s + t * ld + keys, ld)
              }
            }
            keys += block;
          }
        }
        p.mask_padded_keys(bh, runs, num_runs, s);
        p.softmax_numerators(s, keys, inverse_sum.data(), lse_row);
        for (int64_t t = 0; t < block; ++t) round_to_bf16(s + t * ld, keys, probs.data() + t * ld);
        for (int64_t t = 0; t < block; t += 4) {
          for (int64_t d0 = 0; d0 < dim; d0 += 64) {
            DNABIRD_BY_WIDTH(dim - d0, value_tile, probs.data() + t * ld, ld, runs, num_runs,
                             vp_head, block, dim, d0, inverse_sum.data() + t, o_row + t * dim)
          }
        }
      }
    }
  }
  return 0;
#endif
}

}  // extern "C"
