/* Undo fb_lanes.h (and the FB_LANES_F32 / FB_LANES_ISA that chose its copy),
 * at the end of a template that included it. No include guard. */
#undef FT
#undef EW
#undef ARGS
#undef NAME
#undef ATTR
#undef VT
#undef VL
#undef VLOAD
#undef VLOADR
#undef VSTORE
#undef VSET1
#undef VFMA
#undef VADD
#undef VMUL
#undef FASTBP_LANE
#undef FASTBP_LANE_W
#undef FB_LANES_F32
#undef FB_LANES_ISA
