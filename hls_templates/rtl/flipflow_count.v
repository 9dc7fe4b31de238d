// flipflow_count: each pixel's ones count, in front of a centred sparse layer.
//
// Datapath: out = {popcount(in), in}: the number of 1 bits (+1 channels) of a pixel,
//   CW = clog2(CH + 1) bits above its CH channel bits. A centred sparse layer
//   (flipflow_mvu CENTRED = 1) needs the ones count S of every window; its unit adds
//   the K x K counts of the window's pixels instead of counting the window's bits, so
//   each pixel is counted once here and not once per window (docs/DESIGN.md, "Sparse
//   binary layers: hardware").
// Pipeline: LEVELS = ceil(log_16(CH)) adder levels (at least 1), each node summing up
//   to 16 values of the level before (level 0: the pixel's bits), as flipflow_mvu's
//   popcount tree does; levels 1 .. LEVELS - 1 are registered, the last one feeds the
//   output queue. Timing per level: a 16-value node, the path flipflow_mvu's tree has.
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one pixel per beat, CH bits, channel 0 in the LSB.
//   out: one pixel per beat, CH + CW bits: the pixel, its count above it.
// Flow control: the pipeline never stops; a pixel is accepted only while the output
//   queue (out_data and LEVELS slots behind it) has room for every pixel in flight,
//   counted from registers, so in_ready is a function of registers only (no path from
//   out_ready, tests/test_ready_paths.py) and a ready consumer gets one pixel a cycle.
`default_nettype none
module flipflow_count #(
    parameter integer CH = 8  // bits per pixel (binary channels)
) (
    input  wire                         ap_clk,
    input  wire                         ap_rst_n,
    input  wire [CH-1:0]                in_data,
    input  wire                         in_valid,
    output wire                         in_ready,
    output reg  [CH+$clog2(CH + 1)-1:0] out_data,
    output reg                          out_valid,
    input  wire                         out_ready
);
    localparam integer CW     = $clog2(CH + 1);   // count bits
    localparam integer G      = 16;               // values one adder node sums
    localparam integer OW     = CH + CW;
    localparam integer LEVELS = levels(CH);
    localparam integer DEPTH  = LEVELS + 1;       // beats the queue holds: out_data + LEVELS slots
    localparam integer QB     = $clog2(DEPTH + 1);
    localparam integer SB     = LEVELS > 1 ? $clog2(LEVELS) : 1;  // slot index bits

    function integer values_at(input integer level);  // node values at a level (0: the bits)
        integer i;
        begin
            values_at = CH;
            for (i = 0; i < level; i = i + 1) values_at = (values_at + G - 1) / G;
        end
    endfunction
    function integer levels(input integer bits);  // ceil(log_G(bits)), at least 1
        integer n;
        begin
            n = (bits + G - 1) / G;
            for (levels = 1; n > 1; levels = levels + 1) n = (n + G - 1) / G;
        end
    endfunction
    function integer level_at(input integer level);  // offset of a level (0 .. LEVELS) in `nodes`
        integer i;
        begin
            level_at = 0;
            for (i = 0; i < level; i = i + 1) level_at = level_at + values_at(i) * CW;
        end
    endfunction

    // nodes: level 0 (the pixel's bits widened to CW) and the registered levels 1 .. LEVELS - 1,
    // each with the pixel it belongs to; the last level's one node is the count
    wire [level_at(LEVELS)-1:0] nodes;
    wire [CH-1:0] pixel_at [0:LEVELS-1];  // the pixel whose level l nodes are in flight
    wire [CW-1:0] ones;
    genvar l, j;
    generate
        for (j = 0; j < CH; j = j + 1) begin : bit_value
            assign nodes[j*CW +: CW] = CW'(in_data[j]);
        end
        assign pixel_at[0] = in_data;
        for (l = 1; l <= LEVELS; l = l + 1) begin : level
            localparam integer NI = values_at(l - 1), NO = values_at(l);
            wire [NO*CW-1:0] sums;
            for (j = 0; j < NO; j = j + 1) begin : node
                localparam integer FIRST = j * G, SIZE = NI - FIRST < G ? NI - FIRST : G;
                reg [CW-1:0] sum;
                integer i;
                always @* begin
                    sum = {CW{1'b0}};
                    for (i = 0; i < SIZE; i = i + 1) sum = sum + nodes[level_at(l - 1) + (FIRST + i)*CW +: CW];
                end
                assign sums[j*CW +: CW] = sum;
            end
            if (l < LEVELS) begin : registered
                reg [NO*CW-1:0] held;
                reg [CH-1:0]    pixel;
                always @(posedge ap_clk) begin
                    held  <= sums;
                    pixel <= pixel_at[l - 1];
                end
                assign nodes[level_at(l) +: NO*CW] = held;
                assign pixel_at[l] = pixel;
            end else begin : last
                assign ones = sums;
            end
        end
    endgenerate
    wire [OW-1:0] counted = {ones, pixel_at[LEVELS - 1]};

    wire in_fire = in_valid && in_ready;
    wire arrive;  // a counted pixel leaves the pipeline this cycle
    generate
        if (LEVELS > 1) begin : pipelined
            reg [LEVELS-2:0] valid_at;  // bit l - 1: registered level l holds a pixel
            always @(posedge ap_clk) begin
                if (!ap_rst_n) valid_at <= {(LEVELS-1){1'b0}};
                else valid_at <= (LEVELS-1)'({valid_at, in_fire});  // drops the bit past the last level
            end
            assign arrive = valid_at[LEVELS-2];  // at the last registered level
        end else begin : direct
            assign arrive = in_fire;
        end
    endgenerate

    // -- output queue: out_data, then LEVELS shift-register slots behind it ----------
    reg  [OW-1:0] slot [0:LEVELS-1];  // oldest at slot[fill - 1]
    reg  [QB-1:0] fill;               // slots in use
    reg  [QB-1:0] flight;             // pixels accepted and not yet arrived
    wire head_free = !out_valid || out_ready;  // out_data may take a beat this cycle
    wire from_queue = head_free && fill != {QB{1'b0}};
    wire to_queue = arrive && !(head_free && fill == {QB{1'b0}});
    assign in_ready = QB'(out_valid) + fill + flight < QB'(DEPTH);
    integer s;
    always @(posedge ap_clk) begin
        if (to_queue) begin
            slot[0] <= counted;
            for (s = 1; s < LEVELS; s = s + 1) slot[s] <= slot[s - 1];
        end
        if (from_queue) out_data <= slot[SB'(fill - 1'b1)];
        else if (head_free && arrive) out_data <= counted;
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            fill      <= {QB{1'b0}};
            flight    <= {QB{1'b0}};
            out_valid <= 1'b0;
        end else begin
            fill      <= fill + QB'(to_queue) - QB'(from_queue);
            flight    <= flight + QB'(in_fire && LEVELS > 1) - QB'(arrive && LEVELS > 1);
            out_valid <= !head_free || from_queue || arrive;
        end
    end
endmodule
`default_nettype wire
