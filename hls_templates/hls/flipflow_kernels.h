// flipflow streaming kernels for Vitis HLS, in the spirit of finn-hlslib:
// every kernel is one short templated function that reads and writes
// hls::stream and runs one pipelined loop at II=1.
//
// Loops over all `images` declare their iterations for one image as their
// LOOP_TRIPCOUNT, the figure generator/hls_model.py counts per frame.
//
// Every kernel takes one config struct (hls4ml style) naming its parameters;
// the generated flipflow_top.cpp defines one per layer and unit.
//
// Conventions (flipflow docs/DESIGN.md, generator/pack.py):
//  * A feature-map pixel travels as ONE stream word holding all its channels,
//    channel c in bits [c*EB, (c+1)*EB) (EB = 1 for binary maps, 8 for the
//    input pixels). Widths are the network's exact channel counts.
//  * Binary bit 1 = +1, bit 0 = -1. Binary padding is bit 0 (-1); the input
//    layer pads with pixel 0.
//  * A matrix-vector unit with PE rows and SIMD lanes steps through
//    NF = ceil(rows/PE) x SF = ceil(K/SIMD) tiles per input vector at II=1.
//    Inputs are padded with 0 to SF*SIMD; weights are padded so that the pad
//    lanes add nothing (binary: weight 1 never matches input 0; fixed point:
//    weight 0). Pad rows are computed and dropped. A sparse (N:M) unit steps
//    through its rows' kept-weight slots instead: SF = ceil(N x ceil(K/M) / SIMD),
//    each fold reading SIMD/N whole blocks of M input elements (SparseDot).
#ifndef FLIPFLOW_KERNELS_H
#define FLIPFLOW_KERNELS_H

// Words up to 4096 bits (a pixel of a wide layer, a SIMD word); Vitis HLS' default is 1024.
#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 4096
#endif
// GCC >= 11 at -O2 reports false positives located inside the C simulation
// model of ap_int (ap_private): members read before its constructors set them,
// and "undefined behavior" in the reversed-range branch of range() that
// hi >= lo never takes. Silenced for that header only; our own code stays
// under -Wall -Werror.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"
#include <ap_int.h>
#pragma GCC diagnostic pop
#include <hls_stream.h>

namespace flipflow {

// Bits needed to hold the unsigned value v (at least 1).
constexpr unsigned bits_for(unsigned long long v) { return v < 2 ? 1 : 1 + bits_for(v >> 1); }
constexpr unsigned ceil_div(unsigned a, unsigned b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------
// Population count of an N-bit word.
template <unsigned N>
ap_uint<bits_for(N)> popcount(const ap_uint<N> &x) {
#pragma HLS INLINE
#ifdef FLIPFLOW_FAST_CSIM
    // C simulation only: 64 bits at a time with the CPU's popcount. The tests
    // compile the plain loop below too and check that both agree.
    unsigned count = 0;
    for (unsigned lo = 0; lo < N; lo += 64) {
        const unsigned hi = (lo + 63 < N - 1) ? lo + 63 : N - 1;
        count += __builtin_popcountll(x.range(hi, lo).to_uint64());
    }
    return count;
#else
    ap_uint<bits_for(N)> count = 0;
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        count += x[i];
    }
    return count;
#endif
}

// ---------------------------------------------------------------------------
// Dot products of one SIMD-wide weight word (W_BITS per lane) with one fold's
// input word (X_BITS: SIMD elements, or a sparse fold's SIMD / N blocks).

// A dot of each PE row on its own (what every Dot but PixelDot does).
template <typename Dot>
struct RowByRow {
    template <unsigned PE, unsigned TILES, typename Acc, typename W, typename X>
    static void dots(const W weights[PE][TILES], unsigned tile, const X &x, Acc out[PE]) {
#pragma HLS INLINE
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            out[p] = Dot::template dot<Acc>(weights[p][tile], x);
        }
    }
};

// Binary x binary: number of lanes where weight == input (popcount of XNOR).
template <unsigned SIMD>
struct XnorDot : RowByRow<XnorDot<SIMD>> {
    static const unsigned W_BITS = 1, X_BITS = SIMD;
    template <typename Acc>
    static Acc dot(const ap_uint<SIMD> &w, const ap_uint<SIMD> &x) {
#pragma HLS INLINE
        const ap_uint<SIMD> matches = ~(w ^ x);
        return popcount<SIMD>(matches);
    }
};

// Signed WB-bit weights x unsigned 8-bit pixels (first layer). Two PE rows
// share one DSP48 multiplier per lane (INT8 packing, Xilinx WP486): the pixel
// times w_hi * 2^PB + w_lo holds both PB-bit products, cut apart exactly (the
// low product fits PB signed bits; its sign borrows one from the high one).
// An odd last row multiplies alone.
template <unsigned SIMD, unsigned WB>
struct PixelDot {
    static const unsigned W_BITS = WB, X_BITS = SIMD * 8;
    static const unsigned PB = WB + 8;  // bits of one signed pixel x weight product
    template <unsigned PE, unsigned TILES, typename Acc>
    static void dots(const ap_uint<SIMD * WB> weights[PE][TILES], unsigned tile, const ap_uint<SIMD * 8> &x,
                     Acc out[PE]) {
#pragma HLS INLINE
        for (unsigned p = 0; p < PE; p += 2) {
#pragma HLS UNROLL
            const bool paired = p + 1 < PE;
            const ap_uint<SIMD * WB> w_lo = weights[p][tile], w_hi = weights[paired ? p + 1 : p][tile];
            Acc lo = 0, hi = 0;
            for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
                const ap_int<WB> a = w_lo.range(s * WB + WB - 1, s * WB);
                const ap_int<WB> b = paired ? ap_int<WB>(w_hi.range(s * WB + WB - 1, s * WB)) : ap_int<WB>(0);
                const ap_int<WB + PB + 1> packed = (ap_int<WB + PB + 1>(b) << PB) + a;  // 25 bits: a DSP48E1's A port
                const ap_int<WB + PB + 10> product = packed * ap_int<9>(ap_uint<8>(x.range(s * 8 + 7, s * 8)));
                const ap_int<PB> low = product.range(PB - 1, 0);
                const ap_int<PB> high = ap_int<PB>(product.range(2 * PB - 1, PB)) + ap_uint<1>(product[PB - 1]);
                lo += low;
                hi += high;
            }
            out[p] = lo;
            if (paired) out[p + 1] = hi;
        }
    }
};

// Signed WB-bit weights x binary inputs read as +1/-1 (last layer).
template <unsigned SIMD, unsigned WB>
struct BipolarDot : RowByRow<BipolarDot<SIMD, WB>> {
    static const unsigned W_BITS = WB, X_BITS = SIMD;
    template <typename Acc>
    static Acc dot(const ap_uint<SIMD * WB> &w, const ap_uint<SIMD> &x) {
#pragma HLS INLINE
        Acc sum = 0;
        for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            const ap_int<WB> weight = w.range(s * WB + WB - 1, s * WB);
            if (x[s]) sum += weight; else sum -= weight;
        }
        return sum;
    }
};

// N:M sparse 0/1 weights (SBNN, flipflow generator/pack.py): the word holds per lane the
// index of a kept weight within its block of M, and a fold's input word the SIMD / N
// blocks it covers. Lane s selects element (s / N) * M + index (an M:1 multiplexer); the
// weight is 1, so the term is that bit and the dot the popcount of the selected bits,
// popcount(x AND b). Spare slots select a padding element (bit 0) and add nothing.
template <unsigned SIMD, unsigned N, unsigned M>
struct SparseDot : RowByRow<SparseDot<SIMD, N, M>> {
    static_assert(SIMD % N == 0 && N <= M && M >= 2 && (M & (M - 1)) == 0,
                  "SIMD must be a multiple of N <= M, M a power of two >= 2");
    static const unsigned W_BITS = bits_for(M - 1), X_BITS = SIMD / N * M;
    template <typename Acc>
    static Acc dot(const ap_uint<SIMD * W_BITS> &w, const ap_uint<X_BITS> &x) {
#pragma HLS INLINE
        ap_uint<SIMD> picked;
        for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
            const unsigned index = w.range(s * W_BITS + W_BITS - 1, s * W_BITS);
            picked[s] = x[s / N * M + index];
        }
        return popcount<SIMD>(picked);
    }
};

// Centred N:M sparse weights b - N/M (SBNN's {alpha, beta} domain, flipflow kinds.py): a
// fold adds M x popcount(x AND b) - N x popcount(x) to each row, the second count over the
// fold's whole input word (padding bits are 0) and shared by every PE row. Summed over the
// folds: acc = M P - N S, two's complement in the signed Acc, which holds every prefix of
// the sum (a fold adds at most M - N per kept weight and takes at most N per other input).
template <unsigned SIMD, unsigned N, unsigned M>
struct CentredSparseDot {
    typedef SparseDot<SIMD, N, M> Sparse;
    static const unsigned W_BITS = Sparse::W_BITS, X_BITS = Sparse::X_BITS;
    typedef ap_int<bits_for(M * SIMD + N * X_BITS) + 1> Term;  // one fold's value, exact
    template <unsigned PE, unsigned TILES, typename Acc>
    static void dots(const ap_uint<SIMD * W_BITS> weights[PE][TILES], unsigned tile, const ap_uint<X_BITS> &x,
                     Acc out[PE]) {
#pragma HLS INLINE
        const Term window = Term(popcount<X_BITS>(x)) * N;  // one count for all PE rows
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            const Term kept = Term(Sparse::template dot<ap_uint<bits_for(SIMD)>>(weights[p][tile], x)) * M;
            out[p] = Acc(Term(kept - window));
        }
    }
};

// ---------------------------------------------------------------------------
// Activations: what a PE emits once its accumulator has seen all SF folds.

// Output bit = (acc >= threshold), one threshold per output channel.
template <unsigned PE, unsigned NF, typename T>
struct Thresholds {
    static const unsigned OUT_BITS = 1;
    T t[PE][NF];
    template <typename Acc>
    ap_uint<1> activate(unsigned nf, unsigned pe, const Acc &acc) const {
#pragma HLS INLINE
        return acc >= t[pe][nf];
    }
    // Early exit: the output is certain once acc >= t (1) or acc + left < t (0), where
    // left bounds what the folds still to come can add (docs/DESIGN.md, "Early exit: hardware").
    template <typename Acc>
    bool decided(unsigned nf, unsigned pe, const Acc &acc, unsigned left) const {
#pragma HLS INLINE
        return acc >= t[pe][nf] || acc + ap_uint<32>(left) < t[pe][nf];  // ap_ arithmetic: exact
    }
};

// Output bit = (acc >= threshold) XOR invert, per output channel (a sparse layer: a channel
// whose BatchNorm scale is negative fires below its threshold, as a 0/1 weight row cannot be
// inverted). Early exit is not built for these layers: nothing is decided early.
template <unsigned PE, unsigned NF, typename T>
struct InvertedThresholds {
    static const unsigned OUT_BITS = 1;
    T t[PE][NF];
    ap_uint<1> invert[PE][NF];
    template <typename Acc>
    ap_uint<1> activate(unsigned nf, unsigned pe, const Acc &acc) const {
#pragma HLS INLINE
        return ap_uint<1>(acc >= t[pe][nf]) ^ invert[pe][nf];
    }
    template <typename Acc>
    bool decided(unsigned, unsigned, const Acc &, unsigned) const {
        return false;
    }
};

// Integer class scores: the accumulator itself, as OB-bit two's complement.
template <unsigned OB>
struct PassThrough {
    static const unsigned OUT_BITS = OB;
    template <typename Acc>
    ap_uint<OB> activate(unsigned, unsigned, const Acc &acc) const {
#pragma HLS INLINE
        return ap_int<OB>(acc);
    }
    template <typename Acc>
    bool decided(unsigned, unsigned, const Acc &, unsigned) const {
        return false;  // a score is never certain before its last fold
    }
};

// ---------------------------------------------------------------------------
// Matrix-vector unit: VECTORS input vectors per image of SF fold words each;
// for every vector one output word with ROWS channels of Act::OUT_BITS bits.
// One flattened loop of images x VECTORS x NF x SF steps at II=1 (FINN's MVAU):
// the input vector is read during the first neuron fold into vector_buf and
// reused from it for the other NF - 1 folds. The input FIFO (depth SF, one
// vector) is the load half of a double buffer: the producer writes the next
// vector into it while this unit computes the current one, so a vector costs
// max(NF * SF, the producer's cycles per vector).
// Cfg:
//   ROWS    output channels (exact; pad rows beyond it are computed and dropped)
//   PE      rows computed in parallel;  NF = ceil(ROWS / PE) neuron folds
//   SIMD    lanes (terms per cycle);    SF = ceil(K / SIMD) synapse folds (sparse: of the slots)
//   VECTORS input vectors per image (output pixels of a conv, 1 for a dense layer)
//   dot     the datapath (XnorDot, PixelDot, BipolarDot, SparseDot, CentredSparseDot): X_BITS, W_BITS, dots()
//   acc_t   the accumulator type
// Invariant: weight tile = nf * SF + sf.
// EARLY_EXIT (XNOR-popcount with thresholds): a neuron fold after the first ends
// as soon as all its PE rows are decided (Act::decided, with the K - (sf + 1) x SIMD
// real terms left), and the schedule moves to the next one; the first neuron fold
// reads the vector, so it takes all SF steps.
template <typename Cfg, typename Act>
void matrix_vector_unit(hls::stream<ap_uint<Cfg::dot::X_BITS>> &in,
                        hls::stream<ap_uint<Cfg::ROWS * Act::OUT_BITS>> &out,
                        const ap_uint<Cfg::SIMD * Cfg::dot::W_BITS> weights[Cfg::PE][Cfg::NF * Cfg::SF],
                        const Act &act, unsigned images) {
    const unsigned ROWS = Cfg::ROWS, PE = Cfg::PE, SIMD = Cfg::SIMD, NF = Cfg::NF, SF = Cfg::SF;
    typedef typename Cfg::dot Dot;
    typedef typename Cfg::acc_t Acc;
    static_assert(NF * PE >= ROWS && (NF - 1) * PE < ROWS, "NF must be ceil(ROWS / PE)");
    const unsigned OB = Act::OUT_BITS;
    const unsigned PER_IMAGE = Cfg::VECTORS * NF * SF;  // iterations per image
    const unsigned steps = images * PER_IMAGE;
    ap_uint<Dot::X_BITS> vector_buf[SF];
#pragma HLS ARRAY_PARTITION variable=vector_buf complete dim=1
    Acc acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    // Output channels collect here, PE at a time; after NF shifts channel 0
    // sits in the least significant bits. Pad rows land above ROWS and are dropped.
    ap_uint<NF * PE * OB> result = 0;
    unsigned nf = 0, sf = 0, tile = 0, vectors = 0;
    for (unsigned step = 0; step < steps; step++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        ap_uint<Dot::X_BITS> x;
        if (nf == 0) {
            x = in.read();
            vector_buf[sf] = x;
        } else {
            x = vector_buf[sf];
        }
        Acc partial[PE];
#pragma HLS ARRAY_PARTITION variable=partial complete
        Dot::template dots<PE, NF * SF, Acc>(weights, tile, x, partial);
        ap_uint<PE * OB> fold_out = 0;
        const unsigned left = (sf + 1) * SIMD < Cfg::K ? Cfg::K - (sf + 1) * SIMD : 0;  // real terms after this fold
        bool all_decided = true;
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            acc[p] = (sf == 0) ? partial[p] : Acc(acc[p] + partial[p]);
            fold_out.range(p * OB + OB - 1, p * OB) = act.activate(nf, p, acc[p]);
            if (Cfg::EARLY_EXIT) all_decided = all_decided && act.decided(nf, p, acc[p], left);
        }
        const bool group_end = sf == SF - 1 || (Cfg::EARLY_EXIT && nf != 0 && all_decided);
        if (group_end) {
            result = (result >> (PE * OB)) | (ap_uint<NF * PE * OB>(fold_out) << ((NF - 1) * PE * OB));
            if (nf == NF - 1) out.write(result.range(ROWS * OB - 1, 0));
        }
        // advance (sf, nf, tile) through the NF x SF schedule
        if (Cfg::EARLY_EXIT && group_end) {
            sf = 0;
            tile = (nf + 1) * SF;
            if (++nf == NF) {
                nf = 0;
                tile = 0;
                if (++vectors == images * Cfg::VECTORS) break;  // the steps saved end the loop early
            }
            continue;
        }
        tile++;
        if (++sf == SF) {
            sf = 0;
            if (++nf == NF) {
                nf = 0;
                tile = 0;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// One whole K x K window as one stream beat (FINN's parallel window): pixel
// (ky, kx) in px[ky * K + kx], each a word of C channels, so the window
// flattens (ky, kx, c) with c fastest. An array of pixel words rather than one
// ap_uint, whose width Vitis HLS caps at 4096 bits.
template <unsigned N, typename T>
struct Window {
    T px[N];
};

// Width converter of a dense layer (or a 1x1 conv): a vector of WORDS stream
// words of C elements (EB bits each) leaves as SF = ceil(WORDS*C / SIMD) words
// of SIMD elements, the last one zero-padded (the MVU's input padding).
// Elements keep their order. One II=1 loop over all vectors; each iteration
// reads at most one word and writes at most one, so a vector takes
// max(WORDS, SF) iterations, one more where the last word leaves more than
// SIMD elements (PER_VECTOR, as generator/hls_model.py counts it).
// Cfg: C channels per input word, EB bits per element, WORDS input words per
// vector, SIMD elements per output word, VECTORS vectors per image.
template <typename Cfg>
void vector_to_simd(hls::stream<ap_uint<Cfg::C * Cfg::EB>> &in, hls::stream<ap_uint<Cfg::SIMD * Cfg::EB>> &out,
                    unsigned images) {
    const unsigned C = Cfg::C, EB = Cfg::EB, WORDS = Cfg::WORDS, SIMD = Cfg::SIMD;
    const unsigned SF = ceil_div(WORDS * C, SIMD);
    // C <= SIMD: one word read per iteration; by the last read floor((WORDS - 1) * C / SIMD) + 1
    // words are written, the rest one per iteration. C > SIMD: one word written per iteration.
    const unsigned PER_VECTOR = C > SIMD ? SF : WORDS + SF - ((WORDS - 1) * C / SIMD + 1);
    const unsigned PER_IMAGE = Cfg::VECTORS * PER_VECTOR;  // iterations per image
    const unsigned steps = images * PER_IMAGE;
    ap_uint<(C + SIMD) * EB> buf = 0;  // holds < C + SIMD elements, zero above them
    unsigned fill = 0, words_read = 0, emitted = 0;  // of the current vector
    for (unsigned step = 0; step < steps; step++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        if (fill < SIMD && words_read < WORDS) {
            buf |= ap_uint<(C + SIMD) * EB>(in.read()) << (fill * EB);
            fill += C;
            words_read++;
        }
        if (fill >= SIMD || words_read == WORDS) {
            out.write(buf.range(SIMD * EB - 1, 0));
            buf >>= SIMD * EB;
            fill = (fill >= SIMD) ? fill - SIMD : 0;
            if (++emitted == SF) {  // the vector is out: fill == 0, buf == 0
                emitted = 0;
                words_read = 0;
            }
        }
    }
}

// Width converter of a conv: one window beat in, its SF = ceil(K*K*C / SIMD)
// SIMD-element words out, one per iteration (the last zero-padded). The
// window is scattered into the words by wiring alone (every index below is a
// constant once the loops are unrolled). Cfg: K kernel, C channels, EB bits
// per element, SIMD elements per output word, VECTORS windows per image.
template <typename Cfg>
void window_to_simd(hls::stream<Window<Cfg::K * Cfg::K, ap_uint<Cfg::C * Cfg::EB>>> &in,
                    hls::stream<ap_uint<Cfg::SIMD * Cfg::EB>> &out, unsigned images) {
    const unsigned C = Cfg::C, EB = Cfg::EB, SIMD = Cfg::SIMD, ELEMS = Cfg::K * Cfg::K * Cfg::C;
    const unsigned SF = ceil_div(ELEMS, SIMD);
    const unsigned PER_IMAGE = Cfg::VECTORS * SF;  // iterations per image
    const unsigned steps = images * PER_IMAGE;
    ap_uint<SIMD * EB> words[SF];
#pragma HLS ARRAY_PARTITION variable=words complete dim=1
    unsigned sf = 0;
    for (unsigned step = 0; step < steps; step++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        if (sf == 0) {
            const Window<Cfg::K * Cfg::K, ap_uint<C * EB>> w = in.read();
            for (unsigned f = 0; f < SF; f++) {
#pragma HLS UNROLL
                for (unsigned s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
                    const unsigned e = f * SIMD + s;  // element of the window vector
                    words[f].range(s * EB + EB - 1, s * EB) =
                        e < ELEMS ? ap_uint<EB>(w.px[e / C].range((e % C) * EB + EB - 1, (e % C) * EB)) : ap_uint<EB>(0);
                }
            }
        }
        out.write(words[sf]);
        sf = (sf == SF - 1) ? 0 : sf + 1;
    }
}

// ---------------------------------------------------------------------------
// Sliding-window unit, the RTL window unit's structure: a line buffer of ROWS
// rows (flipflow.kinds.window_rows: >= K + S, and >= what a frame boundary spans,
// so the next image's first rows fit; row r in bank r mod ROWS), one bank per row,
// written one input pixel
// per iteration while the reader takes one window column (K pixels, one per
// bank) per iteration into a K x K window register; every S-th column after
// the first K completes a window, which leaves as one beat. Out-of-image
// positions read T(0): bit 0 (-1) for binary maps, pixel 0 for the input image.
// Both sides run in the same II=1 loop over all images, each on its own
// counters (no division), so reading the next rows (of the next image too)
// overlaps emitting windows: a frame costs max(IH*IW, OH*COLS) iterations
// in steady state, COLS = (OW - 1) * S + K column reads per output row.
// Invariants, which make the line buffer free of loop-carried dependences:
//  * the writer fills row `have` (counted from the reader's image) only while
//    have - (lowest row the reader still needs) < ROWS;
//  * the reader starts an output row only once every row it needs is written.
// Cfg: K kernel, S stride, P padding; IH x IW input map, OH x OW output map
// (OH = (IH + 2P - K) / S + 1); ROWS line-buffer rows; ITERATIONS per image
// in the steady state, max(IH * IW, OH * COLS) (the first image adds the fill).
template <typename Cfg, typename T>
void sliding_window(hls::stream<T> &in, hls::stream<Window<Cfg::K * Cfg::K, T>> &out, unsigned images) {
    const unsigned K = Cfg::K, S = Cfg::S, IH = Cfg::IH, IW = Cfg::IW, OH = Cfg::OH, ROWS = Cfg::ROWS;
    const int P = Cfg::P;
    const unsigned COLS = (Cfg::OW - 1) * S + K;
    static_assert(Cfg::ITERATIONS == (IH * IW > OH * COLS ? IH * IW : OH * COLS), "ITERATIONS per image");
    static_assert(ROWS >= K + S, "ROWS must be >= K + S");
    T lines[ROWS][IW];  // input row r of the reader's image in bank (base + r) mod ROWS
#pragma HLS ARRAY_PARTITION variable=lines complete dim=1
#pragma HLS DEPENDENCE variable=lines inter false
    Window<K * K, T> window;
#pragma HLS ARRAY_PARTITION variable=window.px complete
    // writer
    unsigned wx = 0, images_in = 0;
    int have = 0;  // rows written, counted from row 0 of the reader's image (>= IH: the next image's)
    unsigned wy = 0;  // row of the writer's own image
    // reader
    unsigned cx = 0, oy = 0, to_go = K - 1, images_out = 0, base = 0;
    int iy0 = -P;  // top input row of the current output row
    while (images_in < images || images_out < images) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=Cfg::ITERATIONS max=Cfg::ITERATIONS
        const int low = iy0 < 0 ? 0 : iy0;
        const int needed = iy0 + int(K) > int(IH) ? int(IH) : iy0 + int(K);
        const bool write = images_in < images && have - low < int(ROWS);
        const bool read = images_out < images && have >= needed;
        if (write) {
            lines[(base + have) % ROWS][wx] = in.read();
        }
        if (read) {
            const int ix = int(cx) - P;
            const bool col_inside = ix >= 0 && ix < int(IW);
            for (unsigned ky = 0; ky < K; ky++) {
#pragma HLS UNROLL
                const int iy = iy0 + int(ky);
                const bool inside = col_inside && iy >= 0 && iy < int(IH);
                for (unsigned kx = 0; kx + 1 < K; kx++) {
#pragma HLS UNROLL
                    window.px[ky * K + kx] = window.px[ky * K + kx + 1];
                }
                window.px[ky * K + K - 1] = inside ? lines[(base + iy) % ROWS][col_inside ? ix : 0] : T(0);
            }
            if (to_go == 0) out.write(window);
        }
        if (write && ++wx == IW) {
            wx = 0;
            have++;
            if (++wy == IH) {
                wy = 0;
                images_in++;
            }
        }
        if (read) {
            if (cx != COLS - 1) {
                cx++;
                to_go = (to_go == 0) ? S - 1 : to_go - 1;
            } else {
                cx = 0;
                to_go = K - 1;
                if (oy != OH - 1) {
                    oy++;
                    iy0 += S;
                } else {
                    oy = 0;
                    iy0 = -P;
                    base = (base + IH) % ROWS;
                    have -= IH;
                    images_out++;
                }
            }
        }
    }
}

// Max-pool on binary maps: OR of the K x K pixels of each window beat (max of
// +-1 is OR of the bits; the -1 padding is neutral), one window per iteration.
// Cfg: K kernel, OH x OW windows per image.
template <typename Cfg, typename T>
void window_or(hls::stream<Window<Cfg::K * Cfg::K, T>> &in, hls::stream<T> &out, unsigned images) {
    const unsigned PER_IMAGE = Cfg::OH * Cfg::OW;  // iterations per image
    const unsigned windows = images * PER_IMAGE;
    for (unsigned i = 0; i < windows; i++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PER_IMAGE max=PER_IMAGE
        const Window<Cfg::K * Cfg::K, T> w = in.read();
        T acc = 0;
        for (unsigned p = 0; p < Cfg::K * Cfg::K; p++) {
#pragma HLS UNROLL
            acc |= w.px[p];
        }
        out.write(acc);
    }
}

// ---------------------------------------------------------------------------
// Bit-plane input (CBNN): the kept bits of every channel of a pixel become binary
// elements, channel c's plane j (pixel bit Cfg::plane(j)) at bit c * P + j; bit 1 =
// +1, bit 0 = -1. The padding the window unit adds next (bit 0) is pixel 0 in every
// plane, the input layer's padding, so the layer pads as the golden model does.
// One pixel per iteration (II=1).
// Cfg: C channels per pixel, P kept planes, plane(j) the pixel bit of plane j
// (most significant first), PIXELS per image.
template <typename Cfg>
void keep_planes(hls::stream<ap_uint<Cfg::C * 8>> &in, hls::stream<ap_uint<Cfg::C * Cfg::P>> &out, unsigned images) {
    const unsigned C = Cfg::C, P = Cfg::P, PIXELS = Cfg::PIXELS;
    const unsigned steps = images * PIXELS;
    for (unsigned step = 0; step < steps; step++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PIXELS max=PIXELS
        const ap_uint<C * 8> pixel = in.read();
        ap_uint<C * P> bits;
        for (unsigned c = 0; c < C; c++) {
#pragma HLS UNROLL
            for (unsigned j = 0; j < P; j++) {
#pragma HLS UNROLL
                bits[c * P + j] = pixel[c * 8 + Cfg::plane(j)];
            }
        }
        out.write(bits);
    }
}

// Global sum: per image, the sum over PIXELS words of CH signed IB-bit
// scores, emitted as one word of CH signed OB-bit sums with the image's last
// pixel. One II=1 loop over all pixels of all images.
// Cfg: CH channels, IB input bits and OB output bits per score, PIXELS per image.
template <typename Cfg>
void global_sum(hls::stream<ap_uint<Cfg::CH * Cfg::IB>> &in, hls::stream<ap_uint<Cfg::CH * Cfg::OB>> &out,
                unsigned images) {
    const unsigned CH = Cfg::CH, IB = Cfg::IB, OB = Cfg::OB, PIXELS = Cfg::PIXELS;
    const unsigned steps = images * PIXELS;
    ap_int<OB> sums[CH];
#pragma HLS ARRAY_PARTITION variable=sums complete
    unsigned px = 0;  // pixel of the current image
    for (unsigned step = 0; step < steps; step++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=PIXELS max=PIXELS
        const ap_uint<CH * IB> word = in.read();
        ap_uint<CH * OB> result;
        for (unsigned c = 0; c < CH; c++) {
#pragma HLS UNROLL
            const ap_int<IB> score = word.range(c * IB + IB - 1, c * IB);
            sums[c] = (px == 0) ? ap_int<OB>(score) : ap_int<OB>(sums[c] + score);
            result.range(c * OB + OB - 1, c * OB) = sums[c];
        }
        if (px == PIXELS - 1) {
            out.write(result);
            px = 0;
        } else {
            px++;
        }
    }
}

}  // namespace flipflow

#endif  // FLIPFLOW_KERNELS_H
