/* qgt_kern_f32.h -- the complex64 build's names (csrc/f32/): every public and
 * shared symbol of the kernels gets the suffix _f32, so both builds link into
 * one module.  Included by qgt_kern.h when QK_SINGLE is defined. */
#ifndef QGT_KERN_F32_H
#define QGT_KERN_F32_H
#define qgt_kern_compile qgt_kern_compile_f32
#define qgt_kern_prog_free qgt_kern_prog_free_f32
#define qgt_kern_sweep qgt_kern_sweep_f32
#define qgt_kern_sweep_ex qgt_kern_sweep_ex_f32
#define qgt_kern_apply_block qgt_kern_apply_block_f32
#define qgt_kern_adjoint_sweep qgt_kern_adjoint_sweep_f32
#define qgt_kern_marginal qgt_kern_marginal_f32
#define qgt_kern_pauli_expect qgt_kern_pauli_expect_f32
#define qgt_kern_pauli_group qgt_kern_pauli_group_f32
#define qgt_kern_block_norms qgt_kern_block_norms_f32
#define qgt_kern_sample_sorted qgt_kern_sample_sorted_f32
#define qgt_kern_pauli_axpy qgt_kern_pauli_axpy_f32
#define qgt_kern_build_info qgt_kern_build_info_f32
#define qgt_kern_prog qgt_kern_prog_f32
#define qk_apply_op qk_apply_op_f32
#define qk_gather qk_gather_f32
#define qk_scatter qk_scatter_f32
#define qk_run_unit qk_run_unit_f32
#define qk_d1h qk_d1h_f32
#define qk_move qk_move_f32
#define qk_lswap qk_lswap_f32
#define qk_d2h qk_d2h_f32
#define qk_dgu qk_dgu_f32
#define qk_dgl qk_dgl_f32
#define qk_diag qk_diag_f32
#define qk_scalar qk_scalar_f32
#endif
