// flipflow_global_sum: global sum of the class scores over all pixels of a map.
//
// Datapath: per channel, a 32-bit sum of PIXELS sign-extended IN_BITS-bit scores
//   (two's complement, wrapping at 32 bits).
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one pixel per beat, CH signed IN_BITS-bit scores, channel 0 in the LSBs.
//   out: one beat per PIXELS input beats, CH 32-bit sums, channel 0 in the LSBs.
// Timing: one pixel per cycle for PIXELS >= 2: only a frame's last pixel needs
//   out_data free (PIXELS = 1 takes two cycles per frame while the consumer reads at
//   once). in_ready is a function of registers only, never of out_ready
//   (tests/test_ready_paths.py).
`default_nettype none
module flipflow_global_sum #(
    parameter integer CH      = 10,  // channels (classes)
    parameter integer IN_BITS = 8,   // bits per input score, <= 32
    parameter integer PIXELS  = 4    // pixels per frame
) (
    input  wire                 ap_clk,
    input  wire                 ap_rst_n,
    input  wire [CH*IN_BITS-1:0] in_data,
    input  wire                 in_valid,
    output wire                 in_ready,
    output reg  [CH*32-1:0]     out_data,
    output reg                  out_valid,
    input  wire                 out_ready
);
    localparam integer PB = PIXELS > 1 ? $clog2(PIXELS) : 1;

    reg  [CH*32-1:0] sums;
    reg  [CH*32-1:0] merged;
    reg  [PB-1:0]    pixel;
    wire frame_done = pixel == PB'(PIXELS - 1);
    assign in_ready = !(frame_done && out_valid);
    wire in_fire = in_valid && in_ready;
    integer c;
    always @* begin
        for (c = 0; c < CH; c = c + 1)
            merged[c*32 +: 32] = (pixel == {PB{1'b0}} ? 32'd0 : sums[c*32 +: 32])
                               + 32'($signed(in_data[c*IN_BITS +: IN_BITS]));
    end

    always @(posedge ap_clk) begin
        if (in_fire) sums <= merged;
        if (in_fire && frame_done) out_data <= merged;
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            pixel     <= {PB{1'b0}};
            out_valid <= 1'b0;
        end else begin
            if (in_fire) pixel <= frame_done ? {PB{1'b0}} : pixel + 1'b1;
            if (in_fire && frame_done) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
    end
endmodule
`default_nettype wire
