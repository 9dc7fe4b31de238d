// flipflow_mvu: matrix-vector unit of a convolution or dense layer.
//
// Computes OUT_CH outputs from one window of FAN_IN elements, folded onto
// PE rows x SIMD lanes: NF = ceil(OUT_CH / PE) neuron folds x SF = ceil(FAN_IN / SIMD)
// synapse folds ("sparse": SF = ceil(SLOTS / SIMD), below), NF * SF cycles per window
// at II = 1.
// Datapaths (DATAPATH, generate branches):
//   "binary": P = popcount(XNOR(w, x)) over 1-bit elements (pad lanes have w = 1,
//             x = 0), out bit = P >= T (unsigned).
//   "pixels": acc = sum(w * pixel) over 8-bit unsigned pixels and WB-bit signed
//             weights, two PE rows per DSP48 multiplier; out bit = acc >= T (signed).
//   "scores": score = sum(x ? w : -w) over 1-bit elements and WB-bit signed weights
//             (pad lanes have w = 0); out = the AW-bit signed score.
//   "sparse": P = popcount(x AND b) over 1-bit elements and 0/1 weights b with N:M
//             structure (N = SPARSE_N, M = SPARSE_M): the window, padded with 0 bits to
//             whole blocks of M, has N ones of b in every block (at most N in a last
//             partial one), so a row is SLOTS = N * ceil(FAN_IN / M) slots,
//             each naming one element of its block, and the unit reads only those:
//             SF = ceil(SLOTS / SIMD) folds, SIMD a multiple of N. Fold sf covers the
//             SIMD / N whole blocks sf * SIMD / N .. (sf + 1) * SIMD / N - 1 (the window
//             rotates by SIMD * M / N elements a fold, zero beyond FAN_IN); lane j takes
//             block j / N of them through an M:1 multiplexer at its slot's WB-bit index
//             (M a power of two, WB = log2 M), and that bit, registered, is its term
//             (the weight of every slot is 1). Slots a row does not use (a partial block's
//             spare slots, the pad lanes of the last fold, which lie in blocks beyond
//             FAN_IN) point at a 0 bit beyond FAN_IN and add 0; pad rows are computed and
//             dropped. Out bit = (P >= T) XOR invert, unsigned, invert per row (a channel
//             whose BatchNorm scale is negative: a 0/1 row cannot be inverted).
//             CENTRED = 1 (weights b - N/M, flipflow kinds.py): acc = M P - N S with S
//             the ones of the whole window. The window arrives as COUNTS records of
//             FAN_IN / COUNTS elements, each with its COUNT_W-bit ones count above it
//             (flipflow_count counts each pixel once; a conv's window is K x K records,
//             a dense layer's each beat one); the load splits them, and S is the sum of
//             the window's counts, in PRE + TREE + 1 registered stages that sum CG values a
//             node, so that it reaches stage ACC with the fold it belongs to. A row's
//             first synapse fold adds (P_f << log2 M) - N x S, the others P_f << log2 M,
//             AW-bit two's complement (a partial sum may wrap, the whole sum fits), and
//             out bit = (acc >= T, signed) XOR invert.
// Streams: valid/ready; a beat moves when valid && ready.
//   in : POSITIONS beats of EW bits per window, element 0 in the LSBs of the first
//        beat (POSITIONS * EW = FAN_IN * element bits, plus COUNTS * COUNT_W count bits
//        when CENTRED; dense layers take one pixel per beat, convolutions the whole
//        window from flipflow_swu).
//   out: one beat per window, OUT_CH results of 1 bit ("binary", "pixels") or AW bits
//        ("scores"), channel 0 in the LSBs.
// Memories ($readmemh, layout from flipflow.generator.pack):
//   WEIGHT_FILE: NF * SF words of PE x SIMD x WB bits, PE 0 and lane 0 in the LSBs,
//                address nf * SF + sf ("sparse": lane j of row p is the index of
//                slot sf * SIMD + j of row nf * PE + p, at bit (p * SIMD + j) * WB).
//   THRESH_FILE: NF words of PE x TW bits, PE 0 in the LSBs ("binary", "pixels", "sparse"):
//                row p's threshold at bit p * TW (TW = AW; "sparse": TW = AW + 1, the
//                row's invert bit at p * TW + AW).
// Placement is decided by the generator, not inferred (generator/cost.py counts the
//   same): the weights as WEIGHT_RAM says, the thresholds (at most OUT_CH words) in
//   LUTs. Vivado reads the rom_style attribute; Debian's yosys 0.23 has no distributed
//   ROM mapping for xc7, so under yosys a LUT ROM is declared as LUT logic, which is
//   what a distributed ROM is made of.
// AW must hold every accumulator value (and, for "pixels", one WB + 9-bit product).
// Pipeline (for 100 MHz at any folding): weight read, PRE term stages (2 DSP48
//   registers for "pixels", the +w/-w terms for "scores", the multiplexed bits for
//   "sparse", none for "binary", whose XNOR folds into the tree's first LUTs),
//   TREE = ceil(log_TG(SIMD)) adder-tree stages (at least 1; TG = 16 for "binary" and
//   "sparse", 4 otherwise), accumulate + threshold, then the output queue: a
//   window's result is in out_data 2 + PRE + TREE cycles after its last fold is issued
//   (flipflow.generator.cost.mvu_pipeline_stages). Throughput is unchanged by depth.
// Flow control without a stall: the pipeline has no clock enable and never stops.
//   A window's last fold (the one that completes its output beat) is issued only
//   while a credit is free: DEPTH = floor((ACC + 1) / (NF * SF)) + 1 credits, one per
//   slot of the output queue (out_data and DEPTH - 1 shift-register entries behind
//   it), taken at that issue and returned when the beat leaves. So a result always
//   has a slot when it arrives, and with a ready consumer no issue ever waits (a
//   credit is held ACC + 1 cycles, one window's last fold comes every NF * SF
//   cycles; flipflow.generator.cost.mvu_output_depth).
// Early exit (EARLY_EXIT = 1, "binary" only, docs/DESIGN.md "Early exit: hardware"):
//   a row whose partial popcount P after a fold already reaches its threshold T is 1,
//   one with P + (real terms after this fold) < T is 0; both only narrow as folds
//   come, so a decided row stays decided. Once every row of the group is decided at
//   stage ACC its results are taken (they equal P >= T there), the decision is
//   registered, and in the next cycle the issue stage, if it is still on that group
//   (a group sequence tag says so), issues nothing and restarts at the next group's
//   fold 0 (the fold register from its unrotated copy). Folds of the group issued
//   meanwhile are squashed at stage ACC up to the next group's first fold. A group
//   decided at fold d (0-based) so takes min(SF, d + ACC + 2) issue cycles. The
//   output credit is taken at the first fold of the window's last group (its result
//   may come before its last fold): DEPTH = floor((SF + ACC) / (NF x min(SF, ACC + 2)))
//   + 1. With EARLY_EXIT = 0 (or SF = 1) none of this exists. "sparse" refuses it:
//   its remaining-terms bound would count slots, not elements, and is not built.
// Parameters are checked at elaboration (simulation; the generator checks the same).
// Invariant: in_ready and out_valid are functions of this unit's registers only (no
//   combinational path from out_ready or in_valid), so ready never ripples through a
//   chain of units (tests/test_ready_paths.py).
`default_nettype none
// A read-only memory placed in LUTs (see "Placement" above).
`ifdef YOSYS
`define FLIPFLOW_LUT_ROM (* ram_style = "logic" *)
`else
`define FLIPFLOW_LUT_ROM (* rom_style = "distributed" *)
`endif
module flipflow_mvu #(
    parameter         DATAPATH    = "binary",  // "binary", "pixels", "scores" or "sparse" (above)
    parameter integer OUT_CH      = 4,   // output channels (matrix rows)
    parameter integer FAN_IN      = 9,   // elements per window (matrix columns)
    parameter integer PE          = 2,   // rows computed in parallel
    parameter integer SIMD        = 3,   // elements per row per cycle
    parameter integer WB          = 1,   // bits per weight element ("sparse": per slot index, log2 SPARSE_M)
    parameter integer AW          = 5,   // accumulator bits
    parameter integer POSITIONS   = 1,   // input beats per window
    parameter integer EW          = 9,   // bits per input beat
    parameter         WEIGHT_FILE = "",  // absolute paths of the memory files
    parameter         THRESH_FILE = "",  // ("" for "scores")
    parameter         WEIGHT_RAM  = "distributed", // weight ROM in "distributed" (LUT) or "block" RAM
    parameter integer EARLY_EXIT  = 0,   // 1: a row group moves on once decided ("binary", above)
    parameter integer SPARSE_N    = 1,   // "sparse": kept weights (slots) per block of SPARSE_M elements
    parameter integer SPARSE_M    = 1,   // "sparse": elements per block (others: 1)
    parameter integer CENTRED     = 0,   // "sparse": 1 for weights b - N/M (above)
    parameter integer COUNTS      = 0,   // CENTRED: ones counts per window (one per record)
    parameter integer COUNT_W     = 0    // CENTRED: bits per count
) (
    input  wire                           ap_clk,
    input  wire                           ap_rst_n,
    input  wire [EW-1:0]                  in_data,
    input  wire                           in_valid,
    output wire                           in_ready,
    output reg  [OUT_CH*(DATAPATH == "scores" ? AW : 1)-1:0] out_data,  // OUT_CH x RES bits
    output reg                            out_valid,
    input  wire                           out_ready
);
    localparam integer LB    = DATAPATH == "pixels" ? 8 : 1;     // bits per input element
    localparam integer RES   = DATAPATH == "scores" ? AW : 1;    // bits per result
    localparam integer NF    = (OUT_CH + PE - 1) / PE;
    localparam         SPARSE = DATAPATH == "sparse";
    localparam integer SLOTS = SPARSE ? SPARSE_N * ((FAN_IN + SPARSE_M - 1) / SPARSE_M) : FAN_IN;  // terms per row
    localparam integer SF    = (SLOTS + SIMD - 1) / SIMD;
    localparam integer XW    = SPARSE ? SIMD / SPARSE_N * SPARSE_M : SIMD * LB;  // input bits consumed per fold
    localparam integer WINW  = POSITIONS * EW;                  // window bits (with the counts)
    localparam integer BUFW  = SF * XW;                         // window padded to SF folds' elements
    localparam integer NFB   = NF > 1 ? $clog2(NF) : 1;
    localparam integer SFB   = SF > 1 ? $clog2(SF) : 1;
    localparam integer ADDRB = NF * SF > 1 ? $clog2(NF * SF) : 1;
    localparam integer POSB  = POSITIONS > 1 ? $clog2(POSITIONS) : 1;
    // pipeline (see the stages below): stage 1 reads, PRE stages make the terms,
    // TREE stages add them, stage ACC accumulates and thresholds
    localparam integer TG    = DATAPATH == "binary" || SPARSE ? 16 : 4;  // values summed per tree node
    localparam integer PRE   = DATAPATH == "pixels" ? 2 :      // DSP48 A/B and M registers
                               DATAPATH == "scores" || SPARSE ? 1 : 0;  // the terms' register
    localparam integer TREE  = tree_stages(SIMD);
    localparam integer ACC   = 1 + PRE + TREE;  // the stage that accumulates
    localparam integer TREEW = level_at(TREE + 1) - PE * SIMD * AW;  // bits of tree levels 1 .. TREE
    localparam integer OUTW  = OUT_CH * RES;                // bits per output beat
    localparam integer TW    = SPARSE ? AW + 1 : AW;        // bits per row in a threshold word: {invert, T} ("sparse")
    localparam         EE    = EARLY_EXIT != 0 && DATAPATH == "binary" && SF > 1;  // early exit is built
    localparam integer MINF  = SF < ACC + 2 ? SF : ACC + 2;   // fewest issue cycles of a group (early exit)
    localparam integer DEPTH = EE ? (SF + ACC) / (NF * MINF) + 1    // output queue slots = credits (above)
                                  : (ACC + 1) / (NF * SF) + 1;
    localparam integer GB    = $clog2(ACC + 3);  // group tag bits: > the groups issued while a decision is under way
    localparam integer CRB   = $clog2(DEPTH + 1);           // credit counter bits
    localparam         CTR   = SPARSE && CENTRED != 0;       // the window count S is built
    localparam integer NCNT  = CTR ? COUNTS : 0;             // count fields in a window
    localparam integer RECW  = CTR ? FAN_IN / COUNTS : 1;    // elements per record
    localparam integer CST   = PRE + TREE + 1;              // the count sum's registered stages
    localparam integer CG    = count_group(0);              // values it sums per node
    localparam integer CW1   = $clog2(FAN_IN + 1);          // bits of a partial sum of counts

`ifndef SYNTHESIS
    initial begin
        if (DATAPATH != "binary" && DATAPATH != "pixels" && DATAPATH != "scores" && !SPARSE)
            $fatal(1, "flipflow_mvu: DATAPATH %0s is none of binary, pixels, scores, sparse", DATAPATH);
        if (WINW != FAN_IN * LB + NCNT * COUNT_W)
            $fatal(1, "flipflow_mvu: POSITIONS x EW = %0d bits, the window is %0d", WINW, FAN_IN * LB + NCNT * COUNT_W);
        if (CTR && (COUNTS < 1 || FAN_IN % COUNTS != 0 || COUNT_W < $clog2(RECW + 1)))
            $fatal(1, "flipflow_mvu: CENTRED needs COUNTS dividing FAN_IN and COUNT_W >= clog2(FAN_IN / COUNTS + 1)");
        if (SPARSE && !(SPARSE_M >= 2 && (SPARSE_M & (SPARSE_M - 1)) == 0 && SPARSE_N >= 1 && SPARSE_N <= SPARSE_M))
            $fatal(1, "flipflow_mvu: sparse needs 1 <= SPARSE_N <= SPARSE_M, SPARSE_M a power of two >= 2 (%0d:%0d)",
                   SPARSE_N, SPARSE_M);
        if (SPARSE && (SIMD % SPARSE_N != 0 || WB != $clog2(SPARSE_M)))
            $fatal(1, "flipflow_mvu: sparse needs SIMD a multiple of SPARSE_N and WB = log2(SPARSE_M)");
        if (SPARSE && EARLY_EXIT != 0)
            $fatal(1, "flipflow_mvu: early exit is built for the binary datapath only");
        if (!SPARSE && (SPARSE_N != 1 || SPARSE_M != 1 || CENTRED != 0))
            $fatal(1, "flipflow_mvu: SPARSE_N, SPARSE_M and CENTRED are for the sparse datapath");
        if (!CTR && (COUNTS != 0 || COUNT_W != 0))
            $fatal(1, "flipflow_mvu: COUNTS and COUNT_W are for a CENTRED unit");
    end
`endif

    function integer summed(input integer values, input integer group, input integer level);
        integer i;  // values left after `level` tree levels that sum `group` values a node
        begin
            summed = values;
            for (i = 0; i < level; i = i + 1) summed = (summed + group - 1) / group;
        end
    endfunction
    function integer level_terms(input integer level);  // values per row at a tree level
        level_terms = summed(SIMD, TG, level);
    endfunction
    function integer tree_stages(input integer lanes);  // ceil(log_TG(lanes)), at least 1
        integer n;
        begin
            n = (lanes + TG - 1) / TG;
            for (tree_stages = 1; n > 1; tree_stages = tree_stages + 1) n = (n + TG - 1) / TG;
        end
    endfunction
    function integer count_group(input integer unused);  // least CG with CG ** CST >= NCNT
        integer g, p, i;
        begin
            count_group = 2;
            for (g = NCNT; g >= 2; g = g - 1) begin
                p = 1;
                for (i = 0; i < CST; i = i + 1) if (p < NCNT) p = p * g;
                if (p >= NCNT) count_group = g;
            end
        end
    endfunction
    function integer count_terms(input integer level);  // values of the window count at a level
        count_terms = summed(NCNT, CG, level);
    endfunction
    function integer count_at(input integer level);  // offset of a level (1 .. CST - 1) in `counts`
        integer i;
        begin
            count_at = 0;
            for (i = 1; i < level; i = i + 1) count_at = count_at + count_terms(i) * CW1;
        end
    endfunction
    /* verilator lint_off UNUSEDSIGNAL */  // CTR only; elsewhere AW may be narrower than a count
    function [AW-1:0] times_n(input [CW1-1:0] s);  // N x s, a shifted s per one bit of N
        integer b;
        begin
            times_n = {AW{1'b0}};
            for (b = 0; b < 31; b = b + 1)
                if (((SPARSE_N >> b) & 1) != 0) times_n = times_n + (AW'(s) << b);
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */
    function integer level_at(input integer level);  // offset of a level in {tree, terms}
        integer i;
        begin
            level_at = 0;
            for (i = 0; i < level; i = i + 1) level_at = level_at + PE * level_terms(i) * AW;
        end
    endfunction

    // -- load: collect one window while the previous one is computed -------
    // load_buf and the fold register `window` form a double buffer: the next
    // window's first beat is accepted in the cycle the compute side takes the
    // loaded one, so a window costs max(NF * SF, POSITIONS) cycles.
    reg  [WINW-1:0] load_buf;
    reg             load_full;
    wire take;  // compute side takes the loaded window
    assign in_ready = !load_full || take;
    wire load_fire = in_valid && in_ready;
    wire load_done;
    generate
        if (POSITIONS > 1) begin : beats
            reg [POSB-1:0] load_pos;
            assign load_done = load_fire && load_pos == POSB'(POSITIONS - 1);
            always @(posedge ap_clk) begin
                if (load_fire) load_buf <= {in_data, load_buf[WINW-1:EW]};  // element 0 ends in the LSBs
            end
            always @(posedge ap_clk) begin
                if (!ap_rst_n) load_pos <= {POSB{1'b0}};
                else if (load_fire) load_pos <= load_done ? {POSB{1'b0}} : load_pos + 1'b1;
            end
        end else begin : one_beat
            assign load_done = load_fire;
            always @(posedge ap_clk) begin
                if (load_fire) load_buf <= in_data;
            end
        end
    endgenerate
    always @(posedge ap_clk) begin
        if (!ap_rst_n) load_full <= 1'b0;
        else if (load_done) load_full <= 1'b1;
        else if (take) load_full <= 1'b0;
    end
    // the loaded window's elements (and, CENTRED, its records' counts: wiring)
    wire [FAN_IN*LB-1:0] load_elements;
    genvar q, g, l, j;
    generate
        if (CTR) begin : records
            for (j = 0; j < COUNTS; j = j + 1) begin : record
                assign load_elements[j*RECW +: RECW] = load_buf[j*(RECW + COUNT_W) +: RECW];
            end
        end else begin : elements
            assign load_elements = load_buf;
        end
    endgenerate

    // -- stage 0: fold counters, weight/threshold read, input slice ---------
    // The window rotates by SIMD elements per synapse fold, so the current
    // slice is always its low XW bits; after SF folds it is back in place
    // for the next neuron fold.
    reg  [BUFW-1:0] window;
    reg             busy;
    reg  [NFB-1:0]  nf;
    reg  [SFB-1:0]  sf;
    reg  [ADDRB-1:0] addr;
    reg  [CRB-1:0]  owed;  // output slots promised: credit-taking folds issued whose beat has not left
    wire sf_last = sf == SFB'(SF - 1);
    wire nf_last = nf == NFB'(NF - 1);
    wire abort;  // early exit: the group the issue stage is on was decided; restart at the next one
    // the fold that takes the window's output credit: its last (early exit: the last group's first)
    wire claim_fold = EE ? nf_last && sf == {SFB{1'b0}} : sf_last && nf_last;
    wire issue = busy && !abort && (!claim_fold || owed != CRB'(DEPTH));
    wire closing = issue && sf_last && nf_last;  // the window's last fold
    wire ending = closing || (abort && nf_last);  // the issue stage is done with this window
    wire [ADDRB-1:0] next_group_addr;  // early exit: fold 0 of the next neuron fold
    assign take = load_full && (!busy || ending);

    generate
        if (EE) begin : rotate_restart
            // an aborted group leaves the window rotated part way: the next group starts
            // from this unrotated copy
            reg [BUFW-1:0] base;
            always @(posedge ap_clk) begin
                if (take) base <= BUFW'(load_elements);
                if (take) window <= BUFW'(load_elements);
                else if (abort) window <= base;
                else if (issue) window <= {window[XW-1:0], window[BUFW-1:XW]};
            end
        end else if (SF > 1) begin : rotate
            always @(posedge ap_clk) begin
                if (take) window <= BUFW'(load_elements);
                else if (issue) window <= {window[XW-1:0], window[BUFW-1:XW]};
            end
        end else begin : hold
            always @(posedge ap_clk) begin
                if (take) window <= BUFW'(load_elements);
            end
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            busy <= 1'b0;
            nf   <= {NFB{1'b0}};
            sf   <= {SFB{1'b0}};
            addr <= {ADDRB{1'b0}};
        end else begin
            if (issue) begin
                if (closing) begin
                    sf   <= {SFB{1'b0}};
                    nf   <= {NFB{1'b0}};
                    addr <= {ADDRB{1'b0}};
                end else begin
                    addr <= addr + 1'b1;
                    if (sf_last) begin
                        sf <= {SFB{1'b0}};
                        nf <= nf + 1'b1;
                    end else begin
                        sf <= sf + 1'b1;
                    end
                end
            end else if (abort) begin
                sf <= {SFB{1'b0}};
                if (nf_last) begin
                    nf   <= {NFB{1'b0}};
                    addr <= {ADDRB{1'b0}};
                end else begin
                    nf   <= nf + 1'b1;
                    addr <= next_group_addr;
                end
            end
            if (take) busy <= 1'b1;
            else if (ending) busy <= 1'b0;
        end
    end

    // -- stage 1: this fold's weights and input slice ------------------------
    // Control travels with the data: ctl stage k holds {nf, nf_last, last, first}
    // of the fold in pipeline stage k (1 .. ACC); stage ACC accumulates.
    localparam integer CW = NFB + 3;
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [ACC*CW-1:0]      ctl;  // stage ACC's nf goes unread: its thresholds were read a stage earlier
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [ACC-1:0]         valid;
    reg  [XW-1:0]          s1_x;
    reg  [PE*SIMD*WB-1:0]  s1_w;
    generate
        if (WEIGHT_RAM == "block") begin : bram_weights
            (* rom_style = "block" *) reg [PE*SIMD*WB-1:0] weights [0:NF*SF-1];
            initial $readmemh(WEIGHT_FILE, weights);
            always @(posedge ap_clk) s1_w <= weights[addr];
        end else begin : lut_weights
            `FLIPFLOW_LUT_ROM
            reg [PE*SIMD*WB-1:0] weights [0:NF*SF-1];
            initial $readmemh(WEIGHT_FILE, weights);
            always @(posedge ap_clk) s1_w <= weights[addr];
        end
    endgenerate
    always @(posedge ap_clk) begin
        s1_x <= window[XW-1:0];
        ctl  <= {ctl[(ACC-1)*CW-1:0], nf, nf_last, sf_last, sf == {SFB{1'b0}}};
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) valid <= {ACC{1'b0}};
        else valid <= {valid[ACC-2:0], issue};
    end
    wire [2:0]    acc_ctl = ctl[(ACC-1)*CW +: 3];
    wire          acc_valid = valid[ACC-1];
    wire          acc_first = acc_ctl[0];
    wire          acc_last = acc_ctl[1];
    wire          acc_nf_last = acc_ctl[2];
    wire [NFB-1:0] pre_nf = ctl[(ACC-2)*CW + 3 +: NFB];  // the fold entering stage ACC next

    // -- stages 2 .. ACC: per-lane terms, then a registered adder tree ---------
    // terms: PE x SIMD AW-bit values, row p's lane s at (p * SIMD + s) * AW.
    wire [PE*SIMD*AW-1:0] terms;
    reg  [TREEW-1:0]      tree;
    generate
        if (DATAPATH == "pixels") begin : pixel_terms
            // Two PE rows share one DSP48 multiplier per lane (INT8 packing, Xilinx WP486):
            // the zero-extended pixel times w_hi * 2^PB + w_lo gives both PB-bit products,
            // cut apart exactly (the low product fits PB signed bits; its sign borrows
            // one from the high product). An odd last row multiplies alone. The packed
            // weight and pixel (A/B), and the product (M), are registered: the DSP48's
            // own pipeline registers, which it needs for 100 MHz.
            localparam integer PB = WB + 8;  // bits of one signed pixel x weight product
            for (q = 0; q < PE; q = q + 2) begin : dsp_pair
                localparam integer LO = q, HI = q + 1 < PE ? q + 1 : q;
                for (g = 0; g < SIMD; g = g + 1) begin : lane
                    reg signed [WB+PB:0]   packed_w;  // 25 bits for 8-bit weights: a DSP48E1's A port
                    reg        [7:0]       pixel;
                    /* verilator lint_off UNUSEDSIGNAL */
                    reg signed [WB+PB+9:0] pair;  // an odd last row reads only the low product
                    /* verilator lint_on UNUSEDSIGNAL */
                    wire signed [WB+PB:0]  w_lo = (WB+PB+1)'($signed(s1_w[(LO*SIMD + g)*WB +: WB]));
                    always @(posedge ap_clk) begin
                        if (HI != LO) packed_w <= w_lo + { s1_w[(HI*SIMD + g)*WB + WB-1], s1_w[(HI*SIMD + g)*WB +: WB], {PB{1'b0}} };
                        else packed_w <= w_lo;
                        pixel <= s1_x[g*8 +: 8];
                        pair  <= $signed({1'b0, pixel}) * packed_w;
                    end
                    assign terms[(LO*SIMD + g)*AW +: AW] = AW'($signed(pair[PB-1:0]));
                    if (HI != LO) begin : high_row
                        assign terms[(HI*SIMD + g)*AW +: AW] = AW'($signed(pair[2*PB-1:PB])) + AW'(pair[PB-1]);
                    end
                end
            end
        end else if (SPARSE) begin : selected_bits
            // Lane g reads block g / N of the fold's slice through an M:1 multiplexer. Its
            // output is the term (x AND 1), registered (PRE = 1) so that the multiplexer
            // (up to three LUT levels at 64:1) and a tree node never share a cycle. The N
            // lanes of a block share its bits, every PE row the slice.
            for (q = 0; q < PE; q = q + 1) begin : row
                for (g = 0; g < SIMD; g = g + 1) begin : lane
                    wire [SPARSE_M-1:0] block = s1_x[g / SPARSE_N * SPARSE_M +: SPARSE_M];
                    wire [WB-1:0]       index = s1_w[(q*SIMD + g)*WB +: WB];
                    reg                 picked;
                    always @(posedge ap_clk) picked <= block[index];
                    assign terms[(q*SIMD + g)*AW +: AW] = { {(AW-1){1'b0}}, picked };
                end
            end
        end else begin : bit_terms
            for (q = 0; q < PE; q = q + 1) begin : row
                for (g = 0; g < SIMD; g = g + 1) begin : lane
                    wire x = s1_x[g];
                    if (DATAPATH == "binary") begin : xnor_bit
                        assign terms[(q*SIMD + g)*AW +: AW] = { {(AW-1){1'b0}}, ~(x ^ s1_w[q*SIMD + g]) };
                    end else begin : signed_weight
                        // registered (PRE = 1): the negate's carry chain and the tree
                        // node's would not fit one 10 ns cycle together
                        wire [AW-1:0] w = AW'($signed(s1_w[(q*SIMD + g)*WB +: WB]));
                        reg  [AW-1:0] term;
                        always @(posedge ap_clk) term <= x ? w : -w;
                        assign terms[(q*SIMD + g)*AW +: AW] = term;
                    end
                end
            end
        end

        // Each tree stage sums groups of TG values of the previous one (level 0: the
        // terms) into a register: TREE = ceil(log_TG(SIMD)) stages, at least one.
        // tree holds levels 1 .. TREE, PE x N(l) values each, level l at level_at(l).
        wire [PE*SIMD*AW+TREEW-1:0] levels = {tree, terms};
        for (l = 1; l <= TREE; l = l + 1) begin : stage
            localparam integer NI = level_terms(l - 1), NO = level_terms(l);
            localparam integer IN_AT = level_at(l - 1), OUT_AT = level_at(l) - PE*SIMD*AW;
            for (q = 0; q < PE; q = q + 1) begin : row
                for (j = 0; j < NO; j = j + 1) begin : group
                    localparam integer FIRST = j * TG, SIZE = NI - FIRST < TG ? NI - FIRST : TG;
                    reg [AW-1:0] sum;
                    integer i;
                    always @* begin
                        sum = {AW{1'b0}};
                        for (i = 0; i < SIZE; i = i + 1)
                            sum = sum + levels[IN_AT + (q*NI + FIRST + i)*AW +: AW];
                    end
                    always @(posedge ap_clk) begin
                        tree[OUT_AT + (q*NO + j)*AW +: AW] <= sum;
                    end
                end
            end
        end
    endgenerate
    wire [PE*AW-1:0] dot = tree[TREEW-PE*AW +: PE*AW];  // the last level: one sum per row

    // -- centred sparse (CTR): N x S of the fold in stage ACC, one for every row -------
    wire [AW-1:0] window_term;
    generate
        if (CTR) begin : window_count
            // the window's counts, taken with it; then levels 1 .. CST - 1, count_terms(l)
            // values of CW1 bits each, level l at count_at(l) (level 0: the counts); the
            // last level registers N x S, by shifts and adds (a multiplier would take a DSP48)
            reg [COUNTS*COUNT_W-1:0] window_counts;
            reg [count_at(CST)-1:0]  counts;
            reg [AW-1:0]             n_times_s;
            for (j = 0; j < COUNTS; j = j + 1) begin : record
                always @(posedge ap_clk) begin
                    if (take) window_counts[j*COUNT_W +: COUNT_W] <= load_buf[j*(RECW + COUNT_W) + RECW +: COUNT_W];
                end
            end
            for (l = 1; l <= CST; l = l + 1) begin : stage
                localparam integer NI = count_terms(l - 1), NO = count_terms(l);
                for (j = 0; j < NO; j = j + 1) begin : group
                    localparam integer FIRST = j * CG, SIZE = NI - FIRST < CG ? NI - FIRST : CG;
                    reg [CW1-1:0] sum;
                    integer i;
                    if (l == 1) begin : record_counts
                        always @* begin
                            sum = {CW1{1'b0}};
                            for (i = 0; i < SIZE; i = i + 1) sum = sum + CW1'(window_counts[(FIRST + i)*COUNT_W +: COUNT_W]);
                        end
                    end else begin : partials
                        always @* begin
                            sum = {CW1{1'b0}};
                            for (i = 0; i < SIZE; i = i + 1) sum = sum + counts[count_at(l - 1) + (FIRST + i)*CW1 +: CW1];
                        end
                    end
                    if (l < CST) begin : partial
                        always @(posedge ap_clk) counts[count_at(l) + j*CW1 +: CW1] <= sum;
                    end else begin : last
                        always @(posedge ap_clk) n_times_s <= times_n(sum);
                    end
                end
            end
            assign window_term = n_times_s;
        end else begin : no_window_count
            assign window_term = {AW{1'b0}};
        end
    endgenerate

    // -- from stage ACC: accumulate over the synapse folds, threshold ----------
    reg  [PE*AW-1:0]  acc;
    wire [PE*AW-1:0]  total;
    wire [PE*RES-1:0] result;  // this neuron fold's PE results
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PE*AW-1:0]  acc_thr; // their thresholds (0 for "scores"); read by early exit only
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        for (g = 0; g < PE; g = g + 1) begin : pe_lane
            // a centred row's fold adds M x its popcount, its first also - N x the window
            // count (mod 2^AW)
            wire [AW-1:0] fold = CTR ? (dot[g*AW +: AW] << WB) - (acc_first ? window_term : {AW{1'b0}})
                                     : dot[g*AW +: AW];
            assign total[g*AW +: AW] = (acc_first ? {AW{1'b0}} : acc[g*AW +: AW]) + fold;
        end
        if (DATAPATH == "scores") begin : raw_scores
            assign result = total;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [NFB-1:0] unused_nf = pre_nf;  // no thresholds to read
            /* verilator lint_on UNUSEDSIGNAL */
            assign acc_thr = {PE*AW{1'b0}};
        end else begin : thresholded
            `FLIPFLOW_LUT_ROM
            reg [PE*TW-1:0] thresholds [0:NF-1];
            initial $readmemh(THRESH_FILE, thresholds);
            reg [PE*TW-1:0] acc_t;
            always @(posedge ap_clk) begin
                acc_t <= thresholds[pre_nf];
            end
            for (g = 0; g < PE; g = g + 1) begin : pe_lane
                wire [AW-1:0] t = acc_t[g*TW +: AW];
                assign acc_thr[g*AW +: AW] = t;
                if (DATAPATH == "pixels") begin : signed_cmp
                    assign result[g] = $signed(total[g*AW +: AW]) >= $signed(t);
                end else if (CTR) begin : signed_inverted_cmp
                    assign result[g] = ($signed(total[g*AW +: AW]) >= $signed(t)) ^ acc_t[g*TW + AW];
                end else if (SPARSE) begin : inverted_cmp
                    assign result[g] = (total[g*AW +: AW] >= t) ^ acc_t[g*TW + AW];
                end else begin : unsigned_cmp
                    assign result[g] = total[g*AW +: AW] >= t;
                end
            end
        end
    endgenerate

    // a neuron fold's results are complete: at its last fold, or (early exit) once decided
    wire group_end;
    wire acc_done = group_end && acc_nf_last;  // a whole output vector is ready

    // -- early exit: decide at stage ACC, abort the group at the issue stage ----------
    generate
        if (EE) begin : early_exit
            localparam integer XB = GB + SFB;  // {group tag, sf} per pipeline stage
            reg  [GB-1:0]     gseq;     // tag of the group the issue stage is on
            reg  [ADDRB-1:0]  gaddr;    // its fold 0's weight address
            /* verilator lint_off UNUSEDSIGNAL */
            reg  [ACC*XB-1:0] xctl;     // tag and sf of the fold in stage 1 .. ACC (not all read)
            /* verilator lint_on UNUSEDSIGNAL */
            reg  [AW:0]       rem;      // real terms after the fold entering stage ACC (read a stage early)
            reg               skip;     // a decided group's later folds are squashed
            reg               abort_q;  // the group tagged abort_tag was decided last cycle
            reg  [GB-1:0]     abort_tag;
            wire [GB-1:0]     acc_tag = xctl[(ACC-1)*XB + SFB +: GB];
            wire [SFB-1:0]    pre_sf = xctl[(ACC-2)*XB +: SFB];
            wire              live = acc_valid && !(skip && !acc_first);  // a fold that counts
            wire [PE-1:0]     decided;
            for (g = 0; g < PE; g = g + 1) begin : pe_lane
                // 1 once P >= T; 0 once P + rem < T. Monotone in the folds: a row stays decided.
                assign decided[g] = result[g] ||
                                    {1'b0, total[g*AW +: AW]} + rem < {1'b0, acc_thr[g*AW +: AW]};
            end
            assign group_end = live && &decided;  // always at the last fold (rem = 0)
            assign abort = abort_q && abort_tag == gseq && busy;
            assign next_group_addr = gaddr + ADDRB'(SF);
            function [AW:0] rem_after(input [SFB-1:0] s);  // real (not pad) terms after fold s
                integer done;
                begin
                    done = (32'(s) + 1) * SIMD;
                    rem_after = done < FAN_IN ? (AW+1)'(FAN_IN - done) : {(AW+1){1'b0}};
                end
            endfunction
            always @(posedge ap_clk) begin
                xctl <= {xctl[(ACC-1)*XB-1:0], gseq, sf};
                rem  <= rem_after(pre_sf);
                abort_tag <= acc_tag;
            end
            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    gseq    <= {GB{1'b0}};
                    gaddr   <= {ADDRB{1'b0}};
                    skip    <= 1'b0;
                    abort_q <= 1'b0;
                end else begin
                    if ((issue && sf_last) || abort) begin  // the issue stage moves to the next group
                        gseq  <= gseq + 1'b1;
                        gaddr <= (closing || (abort && nf_last)) ? {ADDRB{1'b0}} : gaddr + ADDRB'(SF);
                    end
                    if (live) skip <= &decided && !acc_last;
                    abort_q <= live && &decided && !acc_last;
                end
            end
        end else begin : all_folds
            assign group_end = acc_valid && acc_last;
            assign abort = 1'b0;
            assign next_group_addr = {ADDRB{1'b0}};
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (acc_valid) acc <= total;
    end

    // results of the earlier neuron folds; each fold's results enter at the top,
    // so fold 0 ends in the LSBs of the output vector
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NF*PE*RES-1:0] results_next;  // bits above OUT_CH * RES are padding rows
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (NF > 1) begin : folds
            localparam integer RW = (NF - 1) * PE * RES;
            reg [RW-1:0] results;
            assign results_next = {result, results};
            always @(posedge ap_clk) begin
                if (group_end) results <= results_next[RW+PE*RES-1:PE*RES];
            end
        end else begin : one_fold
            assign results_next = result;
        end
    endgenerate

    // -- output queue: out_data, then DEPTH - 1 shift-register slots behind it ---------
    // A result enters out_data when it is free (empty, or its beat leaves now) and
    // nothing waits, else the queue; the credits guarantee a free slot.
    wire out_fire = out_valid && out_ready;
    always @(posedge ap_clk) begin
        if (!ap_rst_n) owed <= {CRB{1'b0}};
        else owed <= owed + CRB'(issue && claim_fold) - CRB'(out_fire);
    end
`ifdef FLIPFLOW_COUNT_FOLDS
    // the simulation harness's measure of the unit's work: cycles it issues a fold or
    // aborts a group (sim/rtl.py reads the line at the end of the run)
    reg [63:0] fold_slots;
    always @(posedge ap_clk) begin
        if (!ap_rst_n) fold_slots <= 64'd0;
        else if (issue || abort) fold_slots <= fold_slots + 64'd1;
    end
    final $display("flipflow_mvu %m fold_slots %0d", fold_slots);
`endif
    generate
        if (DEPTH > 1) begin : queue
            localparam integer QB = $clog2(DEPTH);  // holds 0 .. DEPTH - 1
            localparam integer SB = DEPTH > 2 ? $clog2(DEPTH - 1) : 1;  // slot index bits
            reg [OUTW-1:0] slot [0:DEPTH-2];  // oldest at slot[fill - 1]
            reg [QB-1:0]   fill;
            wire [SB-1:0]  oldest = SB'(fill - 1'b1);
            wire head_free = !out_valid || out_ready;  // out_data may take a beat this cycle
            wire from_queue = head_free && fill != {QB{1'b0}};
            wire to_queue = acc_done && !(head_free && fill == {QB{1'b0}});
            integer i;
            always @(posedge ap_clk) begin
                if (to_queue) begin
                    slot[0] <= results_next[OUTW-1:0];
                    for (i = 1; i < DEPTH - 1; i = i + 1) slot[i] <= slot[i - 1];
                end
                if (from_queue) out_data <= slot[oldest];
                else if (head_free && acc_done) out_data <= results_next[OUTW-1:0];
            end
            always @(posedge ap_clk) begin
                if (!ap_rst_n) begin
                    fill      <= {QB{1'b0}};
                    out_valid <= 1'b0;
                end else begin
                    fill      <= fill + QB'(to_queue) - QB'(from_queue);
                    out_valid <= !head_free || from_queue || acc_done;
                end
            end
        end else begin : single
            // one slot: a credit is free only once the previous beat has left
            always @(posedge ap_clk) begin
                if (acc_done) out_data <= results_next[OUTW-1:0];
            end
            always @(posedge ap_clk) begin
                if (!ap_rst_n) out_valid <= 1'b0;
                else if (acc_done) out_valid <= 1'b1;
                else if (out_ready) out_valid <= 1'b0;
            end
        end
    endgenerate
endmodule
`default_nettype wire
`undef FLIPFLOW_LUT_ROM
