// flipflow_result: stream adapter from the class scores to the 32-bit output stream.
//
// Datapath: sign-extends the CH scores to int32 and finds the class id (argmax,
//   strict > so the lowest index wins ties).
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one beat per image, CH signed IN_BITS-bit scores, class 0 in the LSBs.
//   out: CH + 1 beats per image, 32 bits each: the scores in class order, then
//        the class id with out_last set (the host's output stream layout).
// Timing: accepts the next image once the last word of this one has left.
`default_nettype none
module flipflow_result #(
    parameter integer CH      = 10,  // classes
    parameter integer IN_BITS = 32   // bits per input score, <= 32
) (
    input  wire                  ap_clk,
    input  wire                  ap_rst_n,
    input  wire [CH*IN_BITS-1:0] in_data,
    input  wire                  in_valid,
    output wire                  in_ready,
    output wire [31:0]           out_data,
    output wire                  out_last,
    output reg                   out_valid,
    input  wire                  out_ready
);
    localparam integer WB = $clog2(CH + 1);  // word index bits: 0 .. CH - 1 scores, CH the class id

    reg  [CH*32-1:0] scores;
    reg  [31:0]      class_id;
    reg  [WB-1:0]    word;
    assign in_ready = !out_valid;
    wire in_fire = in_valid && in_ready;

    // argmax over the incoming scores; strict > keeps the lowest index on ties
    reg [CH*32-1:0] wide;
    reg [31:0]      best_id;
    integer c;
    always @* begin
        for (c = 0; c < CH; c = c + 1)
            wide[c*32 +: 32] = 32'($signed(in_data[c*IN_BITS +: IN_BITS]));
        best_id = 32'd0;
        for (c = 1; c < CH; c = c + 1)
            if ($signed(wide[c*32 +: 32]) > $signed(wide[best_id*32 +: 32])) best_id = c;
    end

    assign out_last = word == WB'(CH);
    // its own compare rather than out_last: yosys maps this mux in fewer LUTs
    assign out_data = (word == WB'(CH)) ? class_id : scores[word*32 +: 32];

    always @(posedge ap_clk) begin
        if (in_fire) begin
            scores   <= wide;
            class_id <= best_id;
        end
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            out_valid <= 1'b0;
            word      <= {WB{1'b0}};
        end else if (in_fire) begin
            out_valid <= 1'b1;
            word      <= {WB{1'b0}};
        end else if (out_valid && out_ready) begin
            if (out_last) out_valid <= 1'b0;
            else word <= word + 1'b1;
        end
    end
endmodule
`default_nettype wire
