// Compiled Verilator harness for flipflow_top: streams images through the
// AXI-Stream ports at full speed (or with random idle cycles / backpressure)
// and records the output words and per-image cycle counts.
//
// usage: Vflipflow_top IN_FILE N_IMAGES IN_WORDS OUT_WORDS OUT_FILE CYCLES_FILE
//                      IDLE_PERCENT STALL_PERCENT SEED MAX_CYCLES [+flipflow_trace]
//   IN_FILE     N_IMAGES * IN_WORDS bytes (flipflow.generator.stream.pack_images)
//   OUT_FILE    receives N_IMAGES * OUT_WORDS little-endian uint32 words
//   CYCLES_FILE receives "first_in last_out" cycle numbers, one line per image
// Exit status: 0 when all outputs arrived, 3 on timeout (MAX_CYCLES reached).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "Vflipflow_top.h"
#include "verilated.h"

int main(int argc, char** argv) {
    if (argc < 11) {
        std::fprintf(stderr, "usage: %s IN_FILE N_IMAGES IN_WORDS OUT_WORDS OUT_FILE CYCLES_FILE IDLE%% STALL%% SEED MAX_CYCLES\n", argv[0]);
        return 2;
    }
    const char* in_path = argv[1];
    const uint64_t n_images = std::strtoull(argv[2], nullptr, 10);
    const uint64_t in_words = std::strtoull(argv[3], nullptr, 10);
    const uint64_t out_words = std::strtoull(argv[4], nullptr, 10);
    const char* out_path = argv[5];
    const char* cycles_path = argv[6];
    const int idle_pct = std::atoi(argv[7]);
    const int stall_pct = std::atoi(argv[8]);
    std::mt19937 rng(static_cast<uint32_t>(std::strtoul(argv[9], nullptr, 10)));
    const uint64_t max_cycles = std::strtoull(argv[10], nullptr, 10);

    std::vector<uint8_t> input(n_images * in_words);
    FILE* f = std::fopen(in_path, "rb");
    if (!f || std::fread(input.data(), 1, input.size(), f) != input.size()) {
        std::fprintf(stderr, "cannot read %llu bytes from %s\n", (unsigned long long)input.size(), in_path);
        return 2;
    }
    std::fclose(f);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);  // passes +flipflow_trace to $test$plusargs
    auto top = std::make_unique<Vflipflow_top>(ctx.get());

    std::vector<uint32_t> output;
    output.reserve(n_images * out_words);
    std::vector<uint64_t> first_in(n_images, 0), last_out(n_images, 0);
    std::uniform_int_distribution<int> percent(0, 99);

    auto tick = [&]() {
        top->ap_clk = 1;
        top->eval();
        top->ap_clk = 0;
        top->eval();
    };
    top->ap_clk = 0;
    top->ap_rst_n = 0;
    top->in_stream_TVALID = 0;
    top->out_stream_TREADY = 0;
    top->eval();
    for (int i = 0; i < 4; ++i) tick();
    top->ap_rst_n = 1;

    uint64_t in_pos = 0, cycle = 0;
    bool offered = false;  // AXI: once TVALID is up it stays up until accepted
    const uint64_t in_total = input.size(), out_total = n_images * out_words;
    while (output.size() < out_total && cycle < max_cycles) {
        if (!offered && in_pos < in_total) offered = idle_pct == 0 || percent(rng) >= idle_pct;
        top->in_stream_TVALID = offered;
        top->in_stream_TDATA = offered ? input[in_pos] : 0;
        top->in_stream_TLAST = offered && (in_pos % in_words == in_words - 1);
        top->out_stream_TREADY = stall_pct == 0 || percent(rng) >= stall_pct;
        top->eval();
        const bool in_fire = offered && top->in_stream_TREADY;
        const bool out_fire = top->out_stream_TVALID && top->out_stream_TREADY;
        if (in_fire) {
            if (in_pos % in_words == 0) first_in[in_pos / in_words] = cycle;
            ++in_pos;
            offered = false;
        }
        if (out_fire) {
            const uint64_t image = output.size() / out_words;
            output.push_back(top->out_stream_TDATA);
            if (top->out_stream_TLAST) last_out[image] = cycle;
        }
        tick();
        ++cycle;
    }
    top->final();

    FILE* o = std::fopen(out_path, "wb");
    std::fwrite(output.data(), sizeof(uint32_t), output.size(), o);
    std::fclose(o);
    FILE* c = std::fopen(cycles_path, "w");
    for (uint64_t i = 0; i < n_images; ++i)
        std::fprintf(c, "%llu %llu\n", (unsigned long long)first_in[i], (unsigned long long)last_out[i]);
    std::fclose(c);
    if (output.size() < out_total) {
        std::fprintf(stderr, "timeout after %llu cycles: %llu of %llu input bytes accepted, %llu of %llu output words\n",
                     (unsigned long long)cycle, (unsigned long long)in_pos, (unsigned long long)in_total,
                     (unsigned long long)output.size(), (unsigned long long)out_total);
        return 3;
    }
    return 0;
}
