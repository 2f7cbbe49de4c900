# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin Python face of the C kernels in csrc/qgt_kern*.c (named after them).

Callers: the runtime's sweep executor and reductions, and the out-of-core page
store (``apply_block``).  This module only checks buffers (dtype, contiguity,
length), releases the GIL around the C call, and turns C status codes into
exceptions through the single table ``_ERRORS``.  Arguments that break the
kernels' contract are bugs in the caller, so they raise InternalError.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free

from qgt.errors import CapacityError, InternalError

cnp.import_array()

KIND_DENSE = QGT_KERN_DENSE
KIND_DIAG = QGT_KERN_DIAG
KIND_SWAPBITS = QGT_KERN_SWAPBITS
MAX_TARGETS = QGT_KERN_MAX_TARGETS
MAX_MARGINAL = QGT_KERN_MAX_MARGINAL

# status code -> (exception class, message): the one place C errors are named
_ERRORS = {
    QGT_KERN_ERR_BAD_ARG: (InternalError, "kernel argument out of range"),
    QGT_KERN_ERR_BAD_WMAP: (
        InternalError,
        "working set must be strictly ascending physical bits below L",
    ),
    QGT_KERN_ERR_BAD_OP: (
        InternalError,
        "malformed op: bad kind or target count, repeated target, control on a "
        "target, or control value outside the control mask",
    ),
    QGT_KERN_ERR_TARGET_OUTSIDE: (
        InternalError,
        "a dense or swap target is not in the sweep's working set",
    ),
    QGT_KERN_ERR_XMASK_RANK: (
        InternalError,
        "pauli_expect: an X or Y acts on a rank bit; it must be made local first",
    ),
    QGT_KERN_ERR_NOMEM: (
        CapacityError,
        "the kernels could not allocate a scratch buffer; give the job more memory "
        "or lower the working-set size",
    ),
    QGT_KERN_ERR_UNSORTED: (
        InternalError,
        "sample targets must be non-negative and sorted ascending",
    ),
    QGT_KERN_ERR_ZERO_NORM: (InternalError, "sampling from a slice of zero norm"),
    QGT_KERN_ERR_BAD_BASE: (
        InternalError,
        "apply_block: base index has bits inside the working set",
    ),
}


cdef int _check(int rc) except -1:
    if rc == QGT_KERN_OK:
        return 0
    cls, msg = _ERRORS.get(rc, (InternalError, f"unknown kernel status {rc}"))
    raise cls(msg)


cdef uint64_t _u64(object x, str name) except? 0:
    try:
        v = int(x)
    except (TypeError, ValueError):
        raise InternalError(f"{name} must be an int, got {x!r}") from None
    if v < 0 or v >= (1 << 64):
        raise InternalError(f"{name}={v} does not fit in 64 unsigned bits")
    return <uint64_t>v


cdef int _int(object x, str name, long lo, long hi) except? -1:
    try:
        v = int(x)
    except (TypeError, ValueError):
        raise InternalError(f"{name} must be an int, got {x!r}") from None
    if v < lo or v > hi:
        raise InternalError(f"{name}={v} is outside [{lo}, {hi}]")
    return <int>v


cdef char *_data(object arr, str name, object dtype, bint writable) except NULL:
    """The data pointer of a 1-D C-contiguous array of ``dtype``."""
    if not isinstance(arr, np.ndarray):
        raise InternalError(f"{name} must be a numpy array, got {type(arr).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>arr
    if a.dtype != dtype or a.ndim != 1 or not a.flags.c_contiguous:
        raise InternalError(
            f"{name} must be a 1-D C-contiguous {np.dtype(dtype).name} array, "
            f"got {arr.dtype} with shape {arr.shape}"
        )
    if writable and not a.flags.writeable:
        raise InternalError(f"{name} is read-only")
    if a.shape[0] == 0:
        raise InternalError(f"{name} is empty")
    return <char *>cnp.PyArray_DATA(a)


cdef int _wmap_array(tuple key, int32_t *wm) except -1:
    """Fill ``wm`` (64 entries) with a working set's bits; its width."""
    cdef int w = len(key)
    if w > 62:
        raise InternalError(f"working set of {w} bits is too large")
    cdef int j
    for j in range(w):
        wm[j] = _int(key[j], "wmap entry", 0, 62)
    return w


cdef bint _single(object arr, str name) except -1:
    """True for a complex64 state (the single-precision kernels), False for complex128."""
    dt = getattr(arr, "dtype", None)
    if dt == np.complex64:
        return True
    if dt == np.complex128:
        return False
    raise InternalError(f"{name} must be complex128 or complex64, got {dt}")


cdef class _Prog:
    """Owns one compiled program; shared by reference so a cached program
    is not freed while another thread still runs it."""

    def __dealloc__(self):
        qgt_kern_prog_free(self.ptr)
        self.ptr = NULL


cdef class _Prog32:
    """The complex64 build's compiled program (see _Prog)."""

    def __dealloc__(self):
        qgt_kern_prog_free_f32(self.ptr)
        self.ptr = NULL


cdef class OpList:
    """The ops of one sweep, packed for C; keeps their matrices alive.

    ``ops`` holds tuples ``(kind, targets, ctrl_mask, ctrl_val, matrix)``:
    DENSE takes a 2^k x 2^k matrix (row/column bit j <-> targets[j]), DIAG the
    2^k diagonal, SWAPBITS two targets and any (e.g. empty) matrix.  Controls
    are masks over global physical bits.  The compiled form for a working
    set is cached, so sweeping or applying blocks again with the same wmap
    costs no recompilation.
    """

    def __init__(self, ops):
        ops = list(ops)
        self._keep = []
        self._n = len(ops)
        self._ops = <qgt_kern_op *>calloc(max(self._n, 1), sizeof(qgt_kern_op))
        if self._ops == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        cdef int j, kind, nt
        cdef cnp.ndarray m
        for i, op in enumerate(ops):
            try:
                kind_o, targets, cmask, cval, matrix = op
            except (TypeError, ValueError):
                raise InternalError(f"op {i} is not (kind, targets, ctrl_mask, ctrl_val, "
                                    f"matrix): {op!r}") from None
            kind = _int(kind_o, "op kind", 0, 2)
            targets = tuple(targets)
            nt = len(targets)
            if nt > QGT_KERN_MAX_TARGETS:
                raise InternalError(f"op {i} has {nt} targets; the kernels take at most "
                                    f"{QGT_KERN_MAX_TARGETS}")
            self._ops[i].kind = kind
            self._ops[i].nt = nt
            for j in range(nt):
                self._ops[i].targets[j] = _int(targets[j], "target", 0, 63)
            self._ops[i].ctrl_mask = _u64(cmask, "ctrl_mask")
            self._ops[i].ctrl_val = _u64(cval, "ctrl_val")
            if kind == QGT_KERN_SWAPBITS:
                self._ops[i].mat = NULL
                continue
            want = (1 << (2 * nt)) if kind == QGT_KERN_DENSE else (1 << nt)
            try:
                m = np.ascontiguousarray(matrix, dtype=np.complex128).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InternalError(f"op {i}: matrix is not complex numbers: {exc}") from None
            if m.shape[0] != want:
                raise InternalError(f"op {i}: matrix has {m.shape[0]} entries, "
                                    f"expected {want} for {nt} targets")
            self._keep.append(m)
            self._ops[i].mat = <const double *>cnp.PyArray_DATA(m)

    def __dealloc__(self):
        free(self._ops)

    def __len__(self):
        return self._n

    def daggered(self):
        """These ops walked backwards, each replaced by its inverse U^dagger (the
        adjoint pass's reverse sweep), without going through Python op tuples."""
        cdef OpList out = OpList.__new__(OpList)
        out._keep = []
        out._n = self._n
        out._ops = <qgt_kern_op *>calloc(max(self._n, 1), sizeof(qgt_kern_op))
        if out._ops == NULL:
            raise MemoryError()
        cdef Py_ssize_t i, r, c, dim
        cdef const double *src
        cdef double *dst
        cdef cnp.ndarray m
        for i in range(self._n):
            out._ops[i] = self._ops[self._n - 1 - i]
            if out._ops[i].kind == QGT_KERN_SWAPBITS:
                continue
            dim = 1 << out._ops[i].nt
            src = out._ops[i].mat
            if out._ops[i].kind == QGT_KERN_DENSE:
                m = np.empty(dim * dim, dtype=np.complex128)
                dst = <double *>cnp.PyArray_DATA(m)
                for r in range(dim):
                    for c in range(dim):
                        dst[2 * (r * dim + c)] = src[2 * (c * dim + r)]
                        dst[2 * (r * dim + c) + 1] = -src[2 * (c * dim + r) + 1]
            else:
                m = np.empty(dim, dtype=np.complex128)
                dst = <double *>cnp.PyArray_DATA(m)
                for r in range(dim):
                    dst[2 * r] = src[2 * r]
                    dst[2 * r + 1] = -src[2 * r + 1]
            out._keep.append(m)
            out._ops[i].mat = <const double *>cnp.PyArray_DATA(m)
        return out

    cdef _Prog _prog_for(self, object wmap):
        key = tuple(int(b) for b in wmap)
        if self._prog is not None and key == self._wkey:
            return self._prog
        cdef int32_t wm[64]
        cdef int w = _wmap_array(key, wm)
        cdef _Prog prog = _Prog.__new__(_Prog)
        cdef int rc
        with nogil:
            rc = qgt_kern_compile(self._ops, <size_t>self._n, w, wm, &prog.ptr)
        _check(rc)
        self._prog, self._wkey = prog, key
        return prog

    cdef _Prog32 _prog32_for(self, object wmap):
        """The complex64 build's program for ``wmap`` (cached like ``_prog_for``)."""
        key = tuple(int(b) for b in wmap)
        if self._prog32 is not None and key == self._wkey32:
            return self._prog32
        cdef int32_t wm[64]
        cdef int w = _wmap_array(key, wm)
        cdef _Prog32 prog = _Prog32.__new__(_Prog32)
        cdef int rc
        with nogil:
            rc = qgt_kern_compile_f32(self._ops, <size_t>self._n, w, wm, &prog.ptr)
        _check(rc)
        self._prog32, self._wkey32 = prog, key
        return prog


def sweep(state, L, rank_base, wmap, OpList ops not None, nthreads, counter=None,
          fixed=(0, 0)):
    """Apply ``ops`` to the whole slice (2^L amplitudes) in one cache-blocked pass
    over units of the working set ``wmap`` (ascending physical local bits).

    ``fixed``: (mask, value) of local bits outside ``wmap``: only the units whose
    bits in ``mask`` read ``value`` (one part of the slice).

    ``counter``: a one-element int64 array in memory shared with other processes
    that sweep the same state at the same time (a node's shared window; it must
    read 0 before the first of them starts): they take chunks of units from it,
    so each does a share of the units."""
    cdef bint single = _single(state, "state")
    cdef char *p = _data(state, "state", state.dtype, True)
    cdef int L_ = _int(L, "L", 0, 62)
    if state.shape[0] != (1 << L_):
        raise InternalError(f"state has {state.shape[0]} amplitudes, expected 2^{L_}")
    cdef uint64_t rb = _u64(rank_base, "rank_base")
    cdef int nt = _int(nthreads, "nthreads", 1, 1 << 16)
    cdef uint64_t fm = _u64(fixed[0], "fixed mask"), fv = _u64(fixed[1], "fixed value")
    cdef int64_t *nxt = NULL
    if counter is not None:
        nxt = <int64_t *>_data(counter, "counter", np.dtype(np.int64), True)
    cdef _Prog prog
    cdef _Prog32 prog32
    cdef int rc
    if single:
        prog32 = ops._prog32_for(wmap)
        with nogil:
            rc = qgt_kern_sweep_ex_f32(<float *>p, L_, rb, prog32.ptr, nt, fm, fv, nxt)
    else:
        prog = ops._prog_for(wmap)
        with nogil:
            rc = qgt_kern_sweep_ex(<double *>p, L_, rb, prog.ptr, nt, fm, fv, nxt)
    _check(rc)


def apply_block(buf, wmap, base, OpList ops not None):
    """Apply ``ops`` to one gathered unit: ``buf`` holds the 2^len(wmap)
    amplitudes of global base index ``base`` (buffer bit j <-> wmap[j])."""
    cdef bint single = _single(buf, "buf")
    cdef char *p = _data(buf, "buf", buf.dtype, True)
    w = len(wmap)
    if w > 62 or buf.shape[0] != (1 << w):
        raise InternalError(f"buf has {buf.shape[0]} amplitudes, expected 2^{w}")
    cdef uint64_t b = _u64(base, "base")
    cdef _Prog prog
    cdef _Prog32 prog32
    cdef int rc
    if single:
        prog32 = ops._prog32_for(wmap)
        with nogil:
            rc = qgt_kern_apply_block_f32(<float *>p, b, prog32.ptr)
    else:
        prog = ops._prog_for(wmap)
        with nogil:
            rc = qgt_kern_apply_block(<double *>p, b, prog.ptr)
    _check(rc)


def marginal(state, L, rank_base, bits, nthreads):
    """Joint probabilities of physical ``bits`` (out index bit j <-> bits[j]),
    summed over this slice; rank bits are constant per slice."""
    cdef bint single = _single(state, "state")
    cdef const char *p = _data(state, "state", state.dtype, False)
    cdef int L_ = _int(L, "L", 0, 62)
    if state.shape[0] != (1 << L_):
        raise InternalError(f"state has {state.shape[0]} amplitudes, expected 2^{L_}")
    cdef uint64_t rb = _u64(rank_base, "rank_base")
    cdef int nt = _int(nthreads, "nthreads", 1, 1 << 16)
    bits = list(bits)
    cdef int nb = len(bits)
    if nb > QGT_KERN_MAX_MARGINAL:
        raise InternalError(f"marginal of {nb} bits; at most {QGT_KERN_MAX_MARGINAL}")
    cdef int32_t bb[16]
    cdef int j
    for j in range(nb):
        bb[j] = _int(bits[j], "bit", 0, 63)
    out = np.empty(1 << nb, dtype=np.float64)
    cdef double *o = <double *>cnp.PyArray_DATA(out)
    cdef int rc
    with nogil:
        if single:
            rc = qgt_kern_marginal_f32(<const float *>p, L_, rb, bb, nb, o, nt)
        else:
            rc = qgt_kern_marginal(<const double *>p, L_, rb, bb, nb, o, nt)
    _check(rc)
    return out


def pauli_expect(state, L, rank_base, xmask, zmask, nthreads):
    """sum_i conj(a_i) (-1)^popcount((i ^ xmask) & zmask) a_(i ^ xmask) over this
    slice, i global; the caller multiplies by i^(number of Y)."""
    return complex(pauli_group(state, L, rank_base, xmask, [zmask], nthreads)[0])


def pauli_group(state, L, rank_base, xmask, zmasks, nthreads):
    """pauli_expect for every zmask of ``zmasks`` (terms sharing ``xmask``), in one pass
    over the slice; a complex array, one value per term."""
    cdef bint single = _single(state, "state")
    cdef const char *p = _data(state, "state", state.dtype, False)
    cdef int L_ = _int(L, "L", 0, 62)
    if state.shape[0] != (1 << L_):
        raise InternalError(f"state has {state.shape[0]} amplitudes, expected 2^{L_}")
    cdef uint64_t rb = _u64(rank_base, "rank_base")
    cdef uint64_t x = _u64(xmask, "xmask")
    cdef int nt = _int(nthreads, "nthreads", 1, 1024)
    z = np.ascontiguousarray(zmasks, dtype=np.uint64)
    cdef int k = z.shape[0]
    re = np.zeros(max(k, 1), dtype=np.float64)
    im = np.zeros(max(k, 1), dtype=np.float64)
    cdef const uint64_t[::1] zv = z if k else np.zeros(1, dtype=np.uint64)
    cdef double[::1] rv = re
    cdef double[::1] iv = im
    cdef int rc
    with nogil:
        if single:
            rc = qgt_kern_pauli_group_f32(<const float *>p, L_, rb, x, &zv[0], k, nt, &rv[0],
                                          &iv[0])
        else:
            rc = qgt_kern_pauli_group(<const double *>p, L_, rb, x, &zv[0], k, nt, &rv[0],
                                      &iv[0])
    _check(rc)
    return (re + 1j * im)[:k]


def adjoint_sweep(psi, lam, L, rank_base, wmap, OpList inverse not None,
                  OpList derivs not None, der_at, nthreads):
    """One sweep of the adjoint reverse pass on psi and lam together
    (csrc/qgt_kern_adjsweep.c): ``inverse`` is the sweep's ops daggered, last op
    first; ``derivs`` the matrices A_j + I, taken before inverse op ``der_at[j]``.
    Returns the complex <lam| A_j |psi> of this slice, one per derivative."""
    cdef bint single = _single(psi, "psi")
    cdef char *p = _data(psi, "psi", psi.dtype, True)
    cdef char *q = _data(lam, "lam", psi.dtype, True)
    cdef int L_ = _int(L, "L", 0, 62)
    if psi.shape[0] != (1 << L_) or lam.shape[0] != (1 << L_):
        raise InternalError(f"psi/lam have {psi.shape[0]}/{lam.shape[0]} amplitudes, "
                            f"expected 2^{L_}")
    at = np.ascontiguousarray(der_at, dtype=np.int32)
    if at.shape[0] != len(derivs):
        raise InternalError(f"{at.shape[0]} positions for {len(derivs)} derivatives")
    cdef const int32_t[::1] av = at if at.shape[0] else np.zeros(1, dtype=np.int32)
    out = np.zeros(max(1, len(derivs)), dtype=np.complex128)
    cdef double *o = <double *>cnp.PyArray_DATA(out)
    cdef uint64_t rb = _u64(rank_base, "rank_base")
    cdef int nt = _int(nthreads, "nthreads", 1, 1024)
    cdef _Prog pi, pd
    cdef _Prog32 pi32, pd32
    cdef int rc
    if single:
        pi32 = inverse._prog32_for(wmap)
        pd32 = derivs._prog32_for(wmap)
        with nogil:
            rc = qgt_kern_adjoint_sweep_f32(<float *>p, <float *>q, L_, rb, pi32.ptr, pd32.ptr,
                                            &av[0], nt, o)
    else:
        pi = inverse._prog_for(wmap)
        pd = derivs._prog_for(wmap)
        with nogil:
            rc = qgt_kern_adjoint_sweep(<double *>p, <double *>q, L_, rb, pi.ptr, pd.ptr,
                                        &av[0], nt, o)
    _check(rc)
    return out[:len(derivs)]


def pauli_axpy(out, inp, L, rank_base, xmask, zmask, coeff, nthreads):
    """out += coeff * X^xmask Z^zmask inp, in place (csrc/qgt_kern_adjoint.c)."""
    cdef bint single = _single(out, "out")
    cdef char *o = _data(out, "out", out.dtype, True)
    cdef const char *p = _data(inp, "inp", out.dtype, False)
    cdef int L_ = _int(L, "L", 0, 62)
    if out.shape[0] != (1 << L_) or inp.shape[0] != (1 << L_):
        raise InternalError(f"out/inp have {out.shape[0]}/{inp.shape[0]} amplitudes, "
                            f"expected 2^{L_}")
    cdef uint64_t rb = _u64(rank_base, "rank_base")
    cdef uint64_t x = _u64(xmask, "xmask")
    cdef uint64_t z = _u64(zmask, "zmask")
    c = complex(coeff)
    cdef double cr = c.real, ci = c.imag
    cdef int nt = _int(nthreads, "nthreads", 1, 1024)
    cdef int rc
    with nogil:
        if single:
            rc = qgt_kern_pauli_axpy_f32(<float *>o, <const float *>p, L_, rb, x, z, cr, ci, nt)
        else:
            rc = qgt_kern_pauli_axpy(<double *>o, <const double *>p, L_, rb, x, z, cr, ci, nt)
    _check(rc)


def block_norms(state, block, nthreads):
    """sum of |a|^2 over each run of ``block`` amplitudes."""
    cdef bint single = _single(state, "state")
    cdef const char *p = _data(state, "state", state.dtype, False)
    cdef size_t n = state.shape[0]
    cdef size_t bl = _u64(block, "block")
    if bl == 0 or n % bl:
        raise InternalError(f"block={bl} does not divide the state length {n}")
    cdef int nt = _int(nthreads, "nthreads", 1, 1 << 16)
    out = np.empty(n // bl, dtype=np.float64)
    cdef double *o = <double *>cnp.PyArray_DATA(out)
    cdef int rc
    with nogil:
        if single:
            rc = qgt_kern_block_norms_f32(<const float *>p, n, bl, o, nt)
        else:
            rc = qgt_kern_block_norms(<const double *>p, n, bl, o, nt)
    _check(rc)
    return out


def permute_blocks(state, src, live, nthreads):
    """Move whole blocks: with the slice cut into ``len(src)`` equal blocks, block j
    becomes old block ``src[j]`` (a permutation).  Blocks with ``live`` 0 are known
    zero: they are never read, a live block whose new content is one is cleared, and
    one whose new content is one too is left alone."""
    cdef char *p = _data(state, "state", state.dtype, True)
    s = np.ascontiguousarray(src, dtype=np.int64)
    lv = np.ascontiguousarray(live, dtype=np.uint8)
    cdef int64_t nb = s.shape[0]
    if nb < 1 or lv.shape[0] != nb or state.nbytes % nb:
        raise InternalError(f"{nb} blocks (live: {lv.shape[0]}) do not cut a state of "
                            f"{state.nbytes} bytes")
    cdef size_t bb = state.nbytes // nb
    cdef int nt = _int(nthreads, "nthreads", 1, 1 << 16)
    cdef const int64_t *sp = <const int64_t *>cnp.PyArray_DATA(s)
    cdef const uint8_t *lp = <const uint8_t *>cnp.PyArray_DATA(lv)
    cdef int rc
    with nogil:
        rc = qgt_kern_permute_blocks(<void *>p, nb, bb, sp, lp, nt)
    _check(rc)


def sample_sorted(state, targets):
    """For each target t (sorted, >= 0), the first local index where the running
    sum of |a|^2 exceeds t; targets past the end go to the last weighted index."""
    cdef bint single = _single(state, "state")
    cdef const char *p = _data(state, "state", state.dtype, False)
    cdef size_t n = state.shape[0]
    t = np.ascontiguousarray(targets, dtype=np.float64)
    if t.ndim != 1:
        raise InternalError(f"targets must be 1-D, got shape {t.shape}")
    cdef size_t ns = t.shape[0]
    out = np.empty(ns, dtype=np.int64)
    if ns == 0:
        return out
    cdef const double *tp = <const double *>cnp.PyArray_DATA(t)
    cdef int64_t *o = <int64_t *>cnp.PyArray_DATA(out)
    cdef int rc
    with nogil:
        if single:
            rc = qgt_kern_sample_sorted_f32(<const float *>p, n, tp, ns, o)
        else:
            rc = qgt_kern_sample_sorted(<const double *>p, n, tp, ns, o)
    _check(rc)
    return out


def build_info():
    """How the kernels were compiled (vector width, OpenMP), for run metadata."""
    return qgt_kern_build_info().decode()


def aligned_zeros(n, dtype=np.complex128):
    """A zeroed complex128 (or complex64) array of ``n`` amplitudes starting on a
    64-byte boundary (numpy's default is 16): full-vector loads never split a line."""
    n = int(n)
    size = np.dtype(dtype).itemsize
    raw = np.zeros(n * size + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n * size].view(dtype)
