// flipflow's own AXI-Stream beat type for C simulation with g++: the fields
// of Vitis HLS's ap_axiu that flipflow uses (data, keep, strb, last; user,
// id, dest when their widths are non-zero). Vitis HLS uses its own header.
#ifndef FLIPFLOW_CSIM_AP_AXI_SDATA_H
#define FLIPFLOW_CSIM_AP_AXI_SDATA_H

#include <ap_int.h>

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<U ? U : 1> user;
    ap_uint<1> last;
    ap_uint<TI ? TI : 1> id;
    ap_uint<TD ? TD : 1> dest;
};

#endif  // FLIPFLOW_CSIM_AP_AXI_SDATA_H
