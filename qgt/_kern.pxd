# Cython declarations of csrc/qgt_kern.h, for qgt/_kern.pyx (and any later
# Cython module that wants to call the kernels without Python overhead).

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef extern from "qgt_kern.h" nogil:
    enum:
        QGT_KERN_OK
        QGT_KERN_ERR_BAD_ARG
        QGT_KERN_ERR_BAD_WMAP
        QGT_KERN_ERR_BAD_OP
        QGT_KERN_ERR_TARGET_OUTSIDE
        QGT_KERN_ERR_XMASK_RANK
        QGT_KERN_ERR_NOMEM
        QGT_KERN_ERR_UNSORTED
        QGT_KERN_ERR_ZERO_NORM
        QGT_KERN_ERR_BAD_BASE

    enum:
        QGT_KERN_DENSE
        QGT_KERN_DIAG
        QGT_KERN_SWAPBITS
        QGT_KERN_MAX_TARGETS
        QGT_KERN_MAX_MARGINAL

    ctypedef struct qgt_kern_op:
        int32_t kind
        int32_t nt
        int32_t targets[6]
        uint64_t ctrl_mask
        uint64_t ctrl_val
        const double *mat

    ctypedef struct qgt_kern_prog:
        pass

    int qgt_kern_compile(const qgt_kern_op *ops, size_t nops, int w, const int32_t *wmap,
                         qgt_kern_prog **out)
    void qgt_kern_prog_free(qgt_kern_prog *prog)
    int qgt_kern_sweep(double *state, int L, uint64_t rank_base, const qgt_kern_prog *prog,
                       int nthreads)
    int qgt_kern_sweep_ex(double *state, int L, uint64_t rank_base,
                          const qgt_kern_prog *prog, int nthreads, uint64_t fix_mask,
                          uint64_t fix_val, int64_t *next)
    int qgt_kern_apply_block(double *buf, uint64_t base, const qgt_kern_prog *prog)
    int qgt_kern_adjoint_sweep(double *psi, double *lam, int L, uint64_t rank_base,
                               const qgt_kern_prog *inv, const qgt_kern_prog *der,
                               const int32_t *der_at, int nthreads, double *out)
    int qgt_kern_marginal(const double *state, int L, uint64_t rank_base, const int32_t *bits,
                          int nb, double *out, int nthreads)
    int qgt_kern_pauli_expect(const double *state, int L, uint64_t rank_base, uint64_t xmask,
                              uint64_t zmask, int nthreads, double *out_re, double *out_im)
    int qgt_kern_pauli_group(const double *state, int L, uint64_t rank_base, uint64_t xmask,
                             const uint64_t *zmasks, int nterms, int nthreads, double *out_re,
                             double *out_im)
    int qgt_kern_block_norms(const double *state, size_t len, size_t block, double *out,
                             int nthreads)
    int qgt_kern_sample_sorted(const double *state, size_t len, const double *targets,
                               size_t ns, int64_t *out_idx)
    int qgt_kern_pauli_axpy(double *out, const double *inp, int L, uint64_t rank_base,
                            uint64_t xmask, uint64_t zmask, double c_re, double c_im,
                            int nthreads)
    int qgt_kern_permute_blocks(void *state, int64_t nblocks, size_t block_bytes,
                                const int64_t *src, const uint8_t *live, int nthreads)
    const char *qgt_kern_build_info()


# the complex64 build of the same kernels (csrc/f32/, csrc/qgt_kern_f32_api.h)
cdef extern from "qgt_kern_f32_api.h" nogil:
    ctypedef struct qgt_kern_prog_f32:
        pass

    int qgt_kern_compile_f32(const qgt_kern_op *ops, size_t nops, int w, const int32_t *wmap,
                             qgt_kern_prog_f32 **out)
    void qgt_kern_prog_free_f32(qgt_kern_prog_f32 *prog)
    int qgt_kern_sweep_f32(float *state, int L, uint64_t rank_base,
                           const qgt_kern_prog_f32 *prog, int nthreads)
    int qgt_kern_sweep_ex_f32(float *state, int L, uint64_t rank_base,
                              const qgt_kern_prog_f32 *prog, int nthreads, uint64_t fix_mask,
                              uint64_t fix_val, int64_t *next)
    int qgt_kern_apply_block_f32(float *buf, uint64_t base, const qgt_kern_prog_f32 *prog)
    int qgt_kern_adjoint_sweep_f32(float *psi, float *lam, int L, uint64_t rank_base,
                                   const qgt_kern_prog_f32 *inv, const qgt_kern_prog_f32 *der,
                                   const int32_t *der_at, int nthreads, double *out)
    int qgt_kern_marginal_f32(const float *state, int L, uint64_t rank_base,
                              const int32_t *bits, int nb, double *out, int nthreads)
    int qgt_kern_pauli_group_f32(const float *state, int L, uint64_t rank_base,
                                 uint64_t xmask, const uint64_t *zmasks, int nterms,
                                 int nthreads, double *out_re, double *out_im)
    int qgt_kern_block_norms_f32(const float *state, size_t len, size_t block, double *out,
                                 int nthreads)
    int qgt_kern_sample_sorted_f32(const float *state, size_t len, const double *targets,
                                   size_t ns, int64_t *out_idx)
    int qgt_kern_pauli_axpy_f32(float *out, const float *inp, int L, uint64_t rank_base,
                                uint64_t xmask, uint64_t zmask, double c_re, double c_im,
                                int nthreads)


cdef class _Prog:
    cdef qgt_kern_prog *ptr


cdef class _Prog32:
    cdef qgt_kern_prog_f32 *ptr


cdef class OpList:
    cdef qgt_kern_op *_ops
    cdef Py_ssize_t _n
    cdef list _keep
    cdef tuple _wkey
    cdef _Prog _prog
    cdef tuple _wkey32
    cdef _Prog32 _prog32
    cdef _Prog _prog_for(self, object wmap)
    cdef _Prog32 _prog32_for(self, object wmap)
