// flipflow accelerator I/O: the AXI-Stream byte layout of generator/stream.py.
//  in_stream : 8-bit beats, one pixel channel each, (h, w, c) order; TLAST on
//              the last byte of an image (not needed: the size is fixed).
//  out_stream: 32-bit beats, per image every class score (int32) and then the
//              class id (argmax, lowest index wins ties) with TLAST.
#ifndef FLIPFLOW_IO_H
#define FLIPFLOW_IO_H

#include <ap_axi_sdata.h>
#include <ap_int.h>
#include <hls_stream.h>

namespace flipflow {

typedef ap_axiu<8, 0, 0, 0> pixel_beat;
typedef ap_axiu<32, 0, 0, 0> score_beat;

// A stream byte as the first layer sees it: the byte itself, or the generated
// top's pixel_codes table (the IR's pixel_codes of its input layer).
struct PixelIdentity {
    static ap_uint<8> code(ap_uint<8> byte) { return byte; }
};

// Byte beats -> one word per pixel holding its C 8-bit channels (channel 0 low),
// each channel value mapped by Codes::code.
template <unsigned C, unsigned PIXELS, typename Codes = PixelIdentity>
void read_pixels(hls::stream<pixel_beat> &in, hls::stream<ap_uint<C * 8>> &out, unsigned images) {
    ap_uint<C * 8> pixel = 0;
    unsigned c = 0;
    const unsigned PER_IMAGE = PIXELS * C;  // iterations per image
    const unsigned beats = images * PER_IMAGE;
    for (unsigned beat = 0; beat < beats; beat++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        const pixel_beat b = in.read();
        pixel.range(c * 8 + 7, c * 8) = Codes::code(b.data);
        if (++c == C) {
            out.write(pixel);
            c = 0;
        }
    }
}

// One word of CLASSES signed SB-bit scores per image -> CLASSES int32 beats,
// then the class id with TLAST. One II=1 loop of CLASSES + 1 beats per image;
// the first beat of an image reads its word and finds the class.
template <unsigned CLASSES, unsigned SB>
void write_scores(hls::stream<ap_uint<CLASSES * SB>> &in, hls::stream<score_beat> &out, unsigned images) {
    static_assert(SB <= 32, "scores must fit the 32-bit output beats");
    const unsigned PER_IMAGE = CLASSES + 1;  // iterations per image
    const unsigned beats = images * PER_IMAGE;
    ap_uint<CLASSES * SB> word = 0;
    ap_uint<32> best_class = 0;
    unsigned c = 0;  // beat of the current image
    for (unsigned beat = 0; beat < beats; beat++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        if (c == 0) {
            word = in.read();
            ap_int<SB> best = word.range(SB - 1, 0);
            best_class = 0;
            for (unsigned k = 1; k < CLASSES; k++) {
#pragma HLS UNROLL
                const ap_int<SB> score = word.range(k * SB + SB - 1, k * SB);
                if (score > best) {  // strict: the lowest index wins ties
                    best = score;
                    best_class = k;
                }
            }
        }
        score_beat b;
        if (c < CLASSES) {
            const ap_int<SB> score = word.range(c * SB + SB - 1, c * SB);
            b.data = ap_int<32>(score);  // sign-extended
        } else {
            b.data = best_class;
        }
        b.keep = -1;
        b.strb = -1;
        b.last = (c == CLASSES);
        out.write(b);
        c = (c == CLASSES) ? 0 : c + 1;
    }
}

}  // namespace flipflow

#endif  // FLIPFLOW_IO_H
