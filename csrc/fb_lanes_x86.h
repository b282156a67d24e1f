/* Include the kernel template FB_TEMPLATE (a quoted header name) once per
 * dtype at the AVX2 and AVX-512 levels: the copies fb_dispatch.h chooses
 * among where FB_X86_COPIES. Each copy sets FB_LANES_F32 and FB_LANES_ISA,
 * which the template's fb_lanes_undef.h clears. No include guard. */
#define FB_LANES_F32 1
#define FB_LANES_ISA FB_LEVEL_AVX2
#include FB_TEMPLATE
#define FB_LANES_F32 0
#define FB_LANES_ISA FB_LEVEL_AVX2
#include FB_TEMPLATE
#define FB_LANES_F32 1
#define FB_LANES_ISA FB_LEVEL_AVX512
#include FB_TEMPLATE
#define FB_LANES_F32 0
#define FB_LANES_ISA FB_LEVEL_AVX512
#include FB_TEMPLATE
