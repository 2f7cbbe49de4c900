/* the complex64 build of qgt_kern_adjsweep.c (see qgt_kern_f32.h) */
#define QK_SINGLE 1
#include "../qgt_kern_adjsweep.c"
