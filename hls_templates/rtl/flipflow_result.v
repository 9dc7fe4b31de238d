// flipflow_result: stream adapter from the class scores to the 32-bit output stream.
//
// Datapath: holds the CH scores in a shift register that moves one score to the
//   output per word, sign-extended to int32; the class id (argmax, strict > so the
//   lowest index wins ties) is found one compare per word as the scores leave,
//   so no path compares more than two scores (timing: CH up to ~100 at 100 MHz).
// Streams: valid/ready; a beat moves when valid && ready.
//   in : one beat per image, CH signed IN_BITS-bit scores, class 0 in the LSBs.
//   out: CH + 1 beats per image, 32 bits each: the scores in class order, then
//        the class id with out_last set (the host's output stream layout).
// Timing: accepts the next image once the last word of this one has left; the
//   first word is valid the cycle after the input beat (latency 1). in_ready is
//   !out_valid, a register: no combinational path from out_ready (tests/test_ready_paths.py).
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

    reg  [CH*IN_BITS-1:0] scores;  // the score of word `word` in the LSBs
    reg  [IN_BITS-1:0]    best;    // the highest score sent so far ...
    reg  [31:0]           best_id; // ... and its class
    reg  [WB-1:0]         word;
    assign in_ready = !out_valid;
    wire in_fire  = in_valid && in_ready;
    wire out_fire = out_valid && out_ready;
    wire [IN_BITS-1:0] score = scores[IN_BITS-1:0];

    assign out_last = word == WB'(CH);
    assign out_data = out_last ? best_id : 32'($signed(score));

    generate
        if (CH > 1) begin : shift
            always @(posedge ap_clk) begin
                if (in_fire) scores <= in_data;
                else if (out_fire) scores <= {score, scores[CH*IN_BITS-1:IN_BITS]};
            end
        end else begin : hold
            always @(posedge ap_clk) begin
                if (in_fire) scores <= in_data;
            end
        end
    endgenerate

    // running argmax over the words as they leave; strict > keeps the lowest index on ties
    always @(posedge ap_clk) begin
        if (out_fire && !out_last && (word == {WB{1'b0}} || $signed(score) > $signed(best))) begin
            best    <= score;
            best_id <= 32'(word);
        end
    end
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            out_valid <= 1'b0;
            word      <= {WB{1'b0}};
        end else if (in_fire) begin
            out_valid <= 1'b1;
            word      <= {WB{1'b0}};
        end else if (out_fire) begin
            if (out_last) out_valid <= 1'b0;
            else word <= word + 1'b1;
        end
    end
endmodule
`default_nettype wire
