// flipflow_mvu: matrix-vector unit of a convolution or dense layer.
//
// Computes OUT_CH outputs from one window of FAN_IN elements, folded onto
// PE rows x SIMD lanes: NF = ceil(OUT_CH / PE) neuron folds x SF = ceil(FAN_IN / SIMD)
// synapse folds, NF * SF cycles per window at II = 1.
// Datapaths (DATAPATH, generate branches):
//   "binary": P = popcount(XNOR(w, x)) over 1-bit elements (pad lanes have w = 1,
//             x = 0), out bit = P >= T (unsigned).
//   "pixels": acc = sum(w * pixel) over 8-bit unsigned pixels and WB-bit signed
//             weights, two PE rows per DSP48 multiplier; out bit = acc >= T (signed).
//   "scores": score = sum(x ? w : -w) over 1-bit elements and WB-bit signed weights
//             (pad lanes have w = 0); out = the AW-bit signed score.
// Streams: valid/ready; a beat moves when valid && ready.
//   in : POSITIONS beats of EW bits per window, element 0 in the LSBs of the first
//        beat (POSITIONS * EW = FAN_IN * element bits; dense layers take one pixel
//        per beat, convolutions the whole window from flipflow_swu).
//   out: one beat per window, OUT_CH results of 1 bit ("binary", "pixels") or AW bits
//        ("scores"), channel 0 in the LSBs.
// Memories ($readmemh, layout from flipflow.generator.pack):
//   WEIGHT_FILE: NF * SF words of PE x SIMD x WB bits, PE 0 and lane 0 in the LSBs,
//                address nf * SF + sf.
//   THRESH_FILE: NF words of PE x AW bits, PE 0 in the LSBs ("binary" and "pixels").
// Placement is decided by the generator, not inferred (generator/cost.py counts the
//   same): the weights as WEIGHT_RAM says, the thresholds (at most OUT_CH words) in
//   LUTs. Vivado reads the rom_style attribute; Debian's yosys 0.23 has no distributed
//   ROM mapping for xc7, so under yosys a LUT ROM is declared as LUT logic, which is
//   what a distributed ROM is made of.
// AW must hold every accumulator value (and, for "pixels", one WB + 9-bit product).
// Pipeline (for 100 MHz at any folding): weight read, PRE term stages (2 DSP48
//   registers for "pixels", the +w/-w terms for "scores", none for "binary"),
//   TREE = ceil(log_TG(SIMD)) adder-tree stages (at least 1; TG = 16 for "binary",
//   4 otherwise), accumulate + threshold, then the output queue: a
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
    parameter         DATAPATH    = "binary",  // "binary", "pixels" or "scores" (above)
    parameter integer OUT_CH      = 4,   // output channels (matrix rows)
    parameter integer FAN_IN      = 9,   // elements per window (matrix columns)
    parameter integer PE          = 2,   // rows computed in parallel
    parameter integer SIMD        = 3,   // elements per row per cycle
    parameter integer WB          = 1,   // bits per weight element
    parameter integer AW          = 5,   // accumulator bits
    parameter integer POSITIONS   = 1,   // input beats per window
    parameter integer EW          = 9,   // bits per input beat
    parameter         WEIGHT_FILE = "",  // absolute paths of the memory files
    parameter         THRESH_FILE = "",  // ("" for "scores")
    parameter         WEIGHT_RAM  = "distributed"  // weight ROM in "distributed" (LUT) or "block" RAM
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
    localparam integer SF    = (FAN_IN + SIMD - 1) / SIMD;
    localparam integer XW    = SIMD * LB;                       // input bits consumed per cycle
    localparam integer WINW  = POSITIONS * EW;                  // window bits
    localparam integer BUFW  = SF * XW;                         // window padded to SF * SIMD elements
    localparam integer NFB   = NF > 1 ? $clog2(NF) : 1;
    localparam integer SFB   = SF > 1 ? $clog2(SF) : 1;
    localparam integer ADDRB = NF * SF > 1 ? $clog2(NF * SF) : 1;
    localparam integer POSB  = POSITIONS > 1 ? $clog2(POSITIONS) : 1;
    // pipeline (see the stages below): stage 1 reads, PRE stages make the terms,
    // TREE stages add them, stage ACC accumulates and thresholds
    localparam integer TG    = DATAPATH == "binary" ? 16 : 4;  // values summed per tree node
    localparam integer PRE   = DATAPATH == "pixels" ? 2 :      // DSP48 A/B and M registers
                               DATAPATH == "scores" ? 1 : 0;   // the signed terms' register
    localparam integer TREE  = tree_stages(SIMD);
    localparam integer ACC   = 1 + PRE + TREE;  // the stage that accumulates
    localparam integer TREEW = level_at(TREE + 1) - PE * SIMD * AW;  // bits of tree levels 1 .. TREE
    localparam integer OUTW  = OUT_CH * RES;                // bits per output beat
    localparam integer DEPTH = (ACC + 1) / (NF * SF) + 1;   // output queue slots = credits (above)
    localparam integer CRB   = $clog2(DEPTH + 1);           // credit counter bits

    function integer level_terms(input integer level);  // values per row at a tree level
        integer i;
        begin
            level_terms = SIMD;
            for (i = 0; i < level; i = i + 1) level_terms = (level_terms + TG - 1) / TG;
        end
    endfunction
    function integer tree_stages(input integer lanes);  // ceil(log_TG(lanes)), at least 1
        integer n;
        begin
            n = (lanes + TG - 1) / TG;
            for (tree_stages = 1; n > 1; tree_stages = tree_stages + 1) n = (n + TG - 1) / TG;
        end
    endfunction
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

    // -- stage 0: fold counters, weight/threshold read, input slice ---------
    // The window rotates by SIMD elements per synapse fold, so the current
    // slice is always its low XW bits; after SF folds it is back in place
    // for the next neuron fold.
    reg  [BUFW-1:0] window;
    reg             busy;
    reg  [NFB-1:0]  nf;
    reg  [SFB-1:0]  sf;
    reg  [ADDRB-1:0] addr;
    reg  [CRB-1:0]  owed;  // output slots promised: last folds issued whose beat has not left
    wire sf_last = sf == SFB'(SF - 1);
    wire nf_last = nf == NFB'(NF - 1);
    wire issue = busy && (!(sf_last && nf_last) || owed != CRB'(DEPTH));
    wire closing = issue && sf_last && nf_last;  // the window's last fold: takes a credit
    assign take = load_full && (!busy || closing);

    generate
        if (SF > 1) begin : rotate
            always @(posedge ap_clk) begin
                if (take) window <= BUFW'(load_buf);
                else if (issue) window <= {window[XW-1:0], window[BUFW-1:XW]};
            end
        end else begin : hold
            always @(posedge ap_clk) begin
                if (take) window <= BUFW'(load_buf);
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
            end
            if (take) busy <= 1'b1;
            else if (closing) busy <= 1'b0;
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
    genvar q, g, l, j;
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

    // -- from stage ACC: accumulate over the synapse folds, threshold ----------
    reg  [PE*AW-1:0]  acc;
    wire [PE*AW-1:0]  total;
    wire [PE*RES-1:0] result;  // this neuron fold's PE results
    generate
        for (g = 0; g < PE; g = g + 1) begin : pe_lane
            assign total[g*AW +: AW] = (acc_first ? {AW{1'b0}} : acc[g*AW +: AW]) + dot[g*AW +: AW];
        end
        if (DATAPATH == "scores") begin : raw_scores
            assign result = total;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [NFB-1:0] unused_nf = pre_nf;  // no thresholds to read
            /* verilator lint_on UNUSEDSIGNAL */
        end else begin : thresholded
            `FLIPFLOW_LUT_ROM
            reg [PE*AW-1:0] thresholds [0:NF-1];
            initial $readmemh(THRESH_FILE, thresholds);
            reg [PE*AW-1:0] acc_t;
            always @(posedge ap_clk) begin
                acc_t <= thresholds[pre_nf];
            end
            for (g = 0; g < PE; g = g + 1) begin : pe_lane
                if (DATAPATH == "pixels") begin : signed_cmp
                    assign result[g] = $signed(total[g*AW +: AW]) >= $signed(acc_t[g*AW +: AW]);
                end else begin : unsigned_cmp
                    assign result[g] = total[g*AW +: AW] >= acc_t[g*AW +: AW];
                end
            end
        end
    endgenerate

    wire acc_done = acc_valid && acc_last && acc_nf_last;  // a whole output vector is ready

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
                if (acc_valid && acc_last) results <= results_next[RW+PE*RES-1:PE*RES];
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
        else owed <= owed + CRB'(closing) - CRB'(out_fire);
    end
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
