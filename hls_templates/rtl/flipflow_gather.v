// flipflow_gather: stream adapter from the 8-bit input stream to whole pixels.
//
// Datapath: shifts CH byte beats into one CH x 8-bit word; no arithmetic.
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one 8-bit channel value per beat, channels of a pixel in order.
//   out: one pixel per beat, CH x 8 bits, channel 0 in the LSBs.
// Timing: one input beat per cycle for CH >= 2: only a pixel's last byte needs
//   out_data free, and a consumer that reads it at once frees it a cycle later
//   (CH = 1 takes two cycles per beat; the generator never gathers one channel).
//   in_ready is a function of registers only, never of out_ready (tests/test_ready_paths.py).
`default_nettype none
module flipflow_gather #(
    parameter integer CH = 3  // channels per pixel (>= 1)
) (
    input  wire            ap_clk,
    input  wire            ap_rst_n,
    input  wire [7:0]      in_data,
    input  wire            in_valid,
    output wire            in_ready,
    output reg  [CH*8-1:0] out_data,
    output reg             out_valid,
    input  wire            out_ready
);
    localparam integer CB = CH > 1 ? $clog2(CH) : 1;

    reg [CH*8-1:0] partial;
    reg [CB-1:0]   channel;
    wire pixel_done = channel == CB'(CH - 1);
    assign in_ready = !(pixel_done && out_valid);
    wire in_fire = in_valid && in_ready;
    // the new byte enters at the top, so channel 0 ends in the LSBs; the oldest drops out
    /* verilator lint_off UNUSEDSIGNAL */
    wire [CH*8+7:0] shifted = {in_data, partial};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [CH*8-1:0] merged = shifted[CH*8+7:8];

    always @(posedge ap_clk) begin
        if (in_fire) partial <= merged;
        if (in_fire && pixel_done) out_data <= merged;
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            channel   <= {CB{1'b0}};
            out_valid <= 1'b0;
        end else begin
            if (in_fire) channel <= pixel_done ? {CB{1'b0}} : channel + 1'b1;
            if (in_fire && pixel_done) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
    end
endmodule
`default_nettype wire
