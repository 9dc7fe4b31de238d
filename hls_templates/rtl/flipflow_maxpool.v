// flipflow_maxpool: max-pool on binary data, after a flipflow_swu.
//
// Datapath: bitwise OR of the K x K pixels of one window beat (a bit is 1 = +1,
//   0 = -1, so OR is max; the window unit pads with 0 = -1, the neutral element).
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one window per beat, K*K pixels of CH bits, (ky, kx, c) with c fastest,
//        pixel (0, 0) in the LSBs.
//   out: one pixel per beat, CH bits, channel 0 in the LSB.
// Timing: one window per cycle.
`default_nettype none
module flipflow_maxpool #(
    parameter integer CH = 8,  // channels
    parameter integer K  = 2   // window size
) (
    input  wire              ap_clk,
    input  wire              ap_rst_n,
    input  wire [K*K*CH-1:0] in_data,
    input  wire              in_valid,
    output wire              in_ready,
    output reg  [CH-1:0]     out_data,
    output reg               out_valid,
    input  wire              out_ready
);
    assign in_ready = !out_valid || out_ready;
    wire in_fire = in_valid && in_ready;
    reg [CH-1:0] merged;
    integer t;
    always @* begin
        merged = {CH{1'b0}};
        for (t = 0; t < K * K; t = t + 1) merged = merged | in_data[t*CH +: CH];
    end

    always @(posedge ap_clk) begin
        if (in_fire) out_data <= merged;
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) out_valid <= 1'b0;
        else if (in_fire) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
    end
endmodule
`default_nettype wire
