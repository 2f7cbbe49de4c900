/* qgt_kern_f32_api.h -- the complex64 build's entry points, for qgt/_kern.pyx.
 *
 * The same functions as qgt_kern.h (see there), compiled from the same sources
 * with QK_SINGLE (csrc/f32/): states are interleaved floats; matrices are still
 * given as complex128 (qgt_kern_op) and rounded once when compiled; every
 * reduction accumulates in double and returns doubles. */
#ifndef QGT_KERN_F32_API_H
#define QGT_KERN_F32_API_H

#include "qgt_kern.h"

typedef struct qgt_kern_prog_f32 qgt_kern_prog_f32;

int qgt_kern_compile_f32(const qgt_kern_op *ops, size_t nops, int w, const int32_t *wmap,
                         qgt_kern_prog_f32 **out);
void qgt_kern_prog_free_f32(qgt_kern_prog_f32 *prog);
int qgt_kern_sweep_f32(float *state, int L, uint64_t rank_base, const qgt_kern_prog_f32 *prog,
                       int nthreads);
int qgt_kern_sweep_ex_f32(float *state, int L, uint64_t rank_base,
                          const qgt_kern_prog_f32 *prog, int nthreads, uint64_t fix_mask,
                          uint64_t fix_val, int64_t *next);
int qgt_kern_apply_block_f32(float *buf, uint64_t base, const qgt_kern_prog_f32 *prog);
int qgt_kern_adjoint_sweep_f32(float *psi, float *lam, int L, uint64_t rank_base,
                               const qgt_kern_prog_f32 *inv, const qgt_kern_prog_f32 *der,
                               const int32_t *der_at, int nthreads, double *out);
int qgt_kern_marginal_f32(const float *state, int L, uint64_t rank_base, const int32_t *bits,
                          int nb, double *out, int nthreads);
int qgt_kern_pauli_group_f32(const float *state, int L, uint64_t rank_base, uint64_t xmask,
                             const uint64_t *zmasks, int nterms, int nthreads, double *out_re,
                             double *out_im);
int qgt_kern_block_norms_f32(const float *state, size_t len, size_t block, double *out,
                             int nthreads);
int qgt_kern_sample_sorted_f32(const float *state, size_t len, const double *targets,
                               size_t ns, int64_t *out_idx);
int qgt_kern_pauli_axpy_f32(float *out, const float *in, int L, uint64_t rank_base,
                            uint64_t xmask, uint64_t zmask, double c_re, double c_im,
                            int nthreads);

#endif
