// flipflow_swu: sliding-window unit (line buffer) in front of a convolution or max-pool.
//
// Datapath: input pixels are written into a banked line buffer; every cycle reads
//   one window column (K pixels) and shifts it into a K x K window register.
//   Every S-th column after the first K completes a window, which is the output
//   beat. Padded pixels (PAD rows/columns around the map) are emitted as 0: pixel
//   0 for the input layer, bit 0 = -1 (the binary padding value) otherwise.
// Streams: valid/ready; a beat moves when valid && ready.
//   in : H x W pixels in raster order, one EW-bit pixel per beat (channel 0 in the LSBs).
//   out: HO x WO beats in raster order, each the whole K x K window (K*K*EW bits),
//        flattened (ky, kx, c) with c fastest, pixel (0, 0) in the LSBs (FINN's parallel window).
// Timing: one output row costs NCOLS = (WO - 1) * S + K column reads, padding
//   columns included; one input pixel is accepted per cycle. in_ready depends on the
//   row counters only (never on out_ready), so ready does not ripple through the
//   window unit (tests/test_ready_paths.py).
// Buffer: ROWS rows, one memory bank per row (slot = row mod ROWS, kept by slot
//   counters that wrap at ROWS), so that one cycle reads a whole window column: the
//   K pixels of column x from the K rows of the current output row. Row counters are
//   free-running and compared by difference, so the writer may start the next
//   frame while the reader finishes this one:
//   * the writer may fill row r while r - (lowest row the reader still needs) < ROWS;
//   * the reader starts an output row once every input row of its window is written.
//   ROWS (flipflow.kinds.window_rows, not a power of two in general) is the larger
//   of the rows from this output row's top to the next one's bottom (K + S, rounded
//   up to a power of two as the buffer always had) and,
//   across a frame boundary, the last output row's rows to the bottom of the map
//   plus the rows of the next frame's first output row (2K without padding): so the
//   writer has the next output row's rows in while the reader is on this one, at a
//   frame's start too, and a reader whose consumer keeps up never waits for its
//   producer to refill the buffer (which would cost cycles the model does not count).
// Geometry: any the IR accepts: 0 <= PAD < K, K <= H + 2 PAD and K <= W + 2 PAD
//   (maps smaller than the kernel, 1x1 maps, non-square maps, S > K); H, W < 2^14
//   (16-bit signed row arithmetic).
`default_nettype none
module flipflow_swu #(
    parameter integer H   = 4,  // input rows
    parameter integer W   = 4,  // input columns
    parameter integer EW  = 1,  // bits per pixel: channels x bits per channel
    parameter integer K   = 3,  // kernel size
    parameter integer S   = 1,  // stride
    parameter integer PAD = 1,  // zero padding on every side
    /* verilator lint_off UNUSEDPARAM */  // read by synthesis only (the banks' ram_style)
    parameter         LINE_RAM = "distributed"  // row banks in "distributed" (LUT) or "block" RAM
    /* verilator lint_on UNUSEDPARAM */
) (
    input  wire              ap_clk,
    input  wire              ap_rst_n,
    input  wire [EW-1:0]     in_data,
    input  wire              in_valid,
    output wire              in_ready,
    output reg  [K*K*EW-1:0] out_data,
    output reg               out_valid,
    input  wire              out_ready
);
    localparam integer HO    = (H + 2 * PAD - K) / S + 1;  // output rows
    localparam integer WO    = (W + 2 * PAD - K) / S + 1;  // output columns
    localparam integer NCOLS = (WO - 1) * S + K;          // column reads per output row
    localparam integer LAST  = (HO - 1) * S > PAD ? (HO - 1) * S - PAD : 0;  // top row of the last output row
    localparam integer FIRST = K - PAD < H ? K - PAD : H;  // rows of the first output row
    localparam integer PROWS = 1 << $clog2(K + S);        // K + S rows, rounded up to a power of two
    localparam integer ROWS  = H - LAST + FIRST > PROWS ? H - LAST + FIRST : PROWS;  // line buffer rows (Buffer)
    localparam integer RB    = $clog2(ROWS);              // row slot bits
    localparam integer CB    = W > 1 ? $clog2(W) : 1;     // column address bits
    localparam integer CXB   = NCOLS > 1 ? $clog2(NCOLS) : 1;
    localparam integer PHASE = K > S ? K : S;             // range of the window phase counter
    localparam integer PHB   = PHASE > 1 ? $clog2(PHASE) : 1;
    localparam integer OYB   = HO > 1 ? $clog2(HO) : 1;
    // the geometry as 16-bit signed numbers for the row and column arithmetic
    localparam signed [15:0] H16 = 16'(H), W16 = 16'(W), K16 = 16'(K), S16 = 16'(S), PAD16 = 16'(PAD);
    localparam signed [15:0] ROWS16 = 16'(ROWS);
    // slot arithmetic mod ROWS: the top row's slot at a frame's start (row -PAD), and its
    // step from the last output row to the next frame's first (H - (HO - 1) * S rows)
    localparam [RB-1:0] SLOT0 = RB'((ROWS - PAD % ROWS) % ROWS);
    localparam [RB-1:0] FRAME_STEP = RB'(((H - (HO - 1) * S) % ROWS + ROWS) % ROWS);  // may be < 0 (PAD > 1)
    localparam [RB-1:0] ROW_STEP = RB'(S % ROWS);
    function [RB-1:0] slot_add(input [RB-1:0] a, input [RB-1:0] b);  // (a + b) mod ROWS, a, b < ROWS
        reg [RB:0] t;
        begin
            t = {1'b0, a} + {1'b0, b};
            slot_add = t >= (RB + 1)'(ROWS) ? RB'(t - (RB + 1)'(ROWS)) : t[RB-1:0];
        end
    endfunction

    // -- writer: one input pixel per cycle into the bank of its row --------
    reg  [CB-1:0] wr_x;
    reg  [15:0]   wr_row;          // rows written so far (free-running)
    reg  [RB-1:0] wr_slot;         // wr_row mod ROWS: the bank being written
    reg  [15:0]   rd_base;         // row counter value of the reader's frame row 0
    reg  signed [15:0] iy0;        // top input row of the current output row
    wire [15:0]   rd_low = rd_base + ((iy0 < 16'sd0) ? 16'd0 : iy0);
    wire [15:0]   rows_ahead = wr_row - rd_low;
    assign in_ready = $signed(rows_ahead) < ROWS16;
    wire in_fire = in_valid && in_ready;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            wr_x    <= {CB{1'b0}};
            wr_row  <= 16'd0;
            wr_slot <= {RB{1'b0}};
        end else if (in_fire) begin
            if (wr_x == CB'(W - 1)) begin
                wr_x    <= {CB{1'b0}};
                wr_row  <= wr_row + 16'd1;
                wr_slot <= slot_add(wr_slot, RB'(1));
            end else begin
                wr_x <= wr_x + 1'b1;
            end
        end
    end

    // -- reader stage 0: one window column per cycle -----------------------
    reg  [CXB-1:0] cx;     // column of the output row, 0 .. NCOLS - 1
    reg  [PHB-1:0] to_go;  // columns left before the next complete window
    reg  [OYB-1:0] oy;
    reg  [RB-1:0]  top_slot;  // (rd_base + iy0) mod ROWS: the bank of window row ky = 0
    wire signed [15:0] ix = $signed({{(16 - CXB){1'b0}}, cx}) - PAD16;
    wire col_outside = ix < 16'sd0 || ix >= W16;
    // rows the current output row needs: up to min(iy0 + K, H) (exclusive)
    wire signed [15:0] rows_needed = (iy0 > H16 - K16) ? H16 : iy0 + K16;
    wire [15:0]   rows_have = wr_row - rd_base;
    wire          rows_ok = $signed(rows_have) >= rows_needed;
    wire          en = !out_valid || out_ready;  // the whole reader pipeline moves in lockstep
    wire          issue = en && rows_ok;

    // banks: written by the writer, all read at column ix (registered read)
    wire [EW-1:0] bank_q [0:ROWS-1];
    genvar b;
    generate
        for (b = 0; b < ROWS; b = b + 1) begin : bank
            // placed as the generator decides (generator/cost.py line_buffer_bank)
            (* ram_style = LINE_RAM *) reg [EW-1:0] mem [0:(1 << CB) - 1];
            reg [EW-1:0] q;
            always @(posedge ap_clk) begin
                if (in_fire && wr_slot == RB'(b)) mem[wr_x] <= in_data;
                if (issue) q <= mem[ix[CB-1:0]];
            end
            assign bank_q[b] = q;
        end
    endgenerate

    // per ky: input row iy0 + ky lies outside the map; its bank
    wire [K-1:0] row_outside;
    wire [K*RB-1:0] row_slots;
    genvar ky, kx;
    generate
        for (ky = 0; ky < K; ky = ky + 1) begin : row_check
            wire signed [15:0] iy = iy0 + 16'(ky);
            assign row_outside[ky] = iy < 16'sd0 || iy >= H16;
            assign row_slots[ky*RB +: RB] = slot_add(top_slot, RB'(ky));
        end
    endgenerate

    // stage 1: the column read, its padding and whether it completes a window
    reg          s1_valid, s1_complete, s1_col_pad;
    reg [K-1:0]  s1_row_pad;  // per ky: input row outside the map
    reg [K*RB-1:0] s1_slot;   // per ky: the bank of window row ky
    always @(posedge ap_clk) begin
        if (issue) begin
            s1_complete <= to_go == {PHB{1'b0}};
            s1_col_pad  <= col_outside;
            s1_slot     <= row_slots;
            s1_row_pad  <= row_outside;
        end
    end

    // the column as K pixels (ky = 0 in the LSBs), padding forced to 0, and the
    // window register after shifting it in at kx = K - 1
    wire [K*EW-1:0]   column;
    wire [K*K*EW-1:0] shifted;
    generate
        for (ky = 0; ky < K; ky = ky + 1) begin : row
            wire [RB-1:0] slot = s1_slot[ky*RB +: RB];  // bank of row ky: a ROWS:1 mux per bit
            assign column[ky*EW +: EW] = (s1_col_pad || s1_row_pad[ky]) ? {EW{1'b0}} : bank_q[slot];
            for (kx = 0; kx < K; kx = kx + 1) begin : tap
                if (kx == K - 1) begin : fresh
                    assign shifted[(ky*K + kx)*EW +: EW] = column[ky*EW +: EW];
                end else begin : older
                    assign shifted[(ky*K + kx)*EW +: EW] = out_data[(ky*K + kx + 1)*EW +: EW];
                end
            end
        end
    endgenerate

    always @(posedge ap_clk) begin
        if (en && s1_valid) out_data <= shifted;
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            s1_valid  <= 1'b0;
            out_valid <= 1'b0;
            cx      <= {CXB{1'b0}};
            to_go   <= PHB'(K - 1);
            oy      <= {OYB{1'b0}};
            iy0     <= -PAD16;
            rd_base <= 16'd0;
            top_slot <= SLOT0;
        end else begin
            if (en) begin
                s1_valid  <= rows_ok;
                out_valid <= s1_valid && s1_complete;
            end
            if (issue) begin
                if (cx != CXB'(NCOLS - 1)) begin
                    cx    <= cx + 1'b1;
                    to_go <= (to_go == {PHB{1'b0}}) ? PHB'(S - 1) : to_go - 1'b1;
                end else begin
                    cx    <= {CXB{1'b0}};
                    to_go <= PHB'(K - 1);
                    if (oy != OYB'(HO - 1)) begin
                        oy       <= oy + 1'b1;
                        iy0      <= iy0 + S16;
                        top_slot <= slot_add(top_slot, ROW_STEP);
                    end else begin
                        oy       <= {OYB{1'b0}};
                        iy0      <= -PAD16;
                        rd_base  <= rd_base + H16;
                        top_slot <= slot_add(top_slot, FRAME_STEP);
                    end
                end
            end
        end
    end
endmodule
`default_nettype wire
