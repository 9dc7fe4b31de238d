// flipflow_maxpool: max-pool on binary data, after a flipflow_swu.
//
// Datapath: bitwise OR of the K x K pixels of one window beat (a bit is 1 = +1,
//   0 = -1, so OR is max; the window unit pads with 0 = -1, the neutral element).
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one window per beat, K*K pixels of CH bits, (ky, kx, c) with c fastest,
//        pixel (0, 0) in the LSBs.
//   out: one pixel per beat, CH bits, channel 0 in the LSB.
// Timing: one window per cycle. A skid slot behind out_data takes the beat that
//   arrives while the consumer holds back, so in_ready is a register (!skid_valid)
//   and no combinational path runs from out_ready to in_ready (tests/test_ready_paths.py).
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
    reg          skid_valid;
    reg [CH-1:0] skid;
    assign in_ready = !skid_valid;
    wire in_fire = in_valid && in_ready;
    wire head_free = !out_valid || out_ready;  // out_data may take a beat this cycle
    reg [CH-1:0] merged;
    integer t;
    always @* begin
        merged = {CH{1'b0}};
        for (t = 0; t < K * K; t = t + 1) merged = merged | in_data[t*CH +: CH];
    end

    always @(posedge ap_clk) begin
        if (head_free) out_data <= skid_valid ? skid : merged;  // the older beat first
        if (in_fire && !head_free) skid <= merged;
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            out_valid  <= 1'b0;
            skid_valid <= 1'b0;
        end else begin
            out_valid  <= !head_free || skid_valid || in_fire;
            skid_valid <= !head_free && (skid_valid || in_fire);
        end
    end
endmodule
`default_nettype wire
