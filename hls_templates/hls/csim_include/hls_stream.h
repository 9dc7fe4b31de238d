// flipflow's own hls::stream for C simulation with g++ (no Vitis needed).
// Same interface subset as Vitis HLS's hls::stream: an unbounded FIFO, as in
// Vitis C simulation, where dataflow processes run one after the other.
// Vitis HLS uses its own header; this folder is only on the g++ include path.
#ifndef FLIPFLOW_CSIM_HLS_STREAM_H
#define FLIPFLOW_CSIM_HLS_STREAM_H

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>

namespace hls {

template <typename T>
class stream {
  public:
    stream() : name_("stream") {}
    explicit stream(const char *name) : name_(name) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;

    void write(const T &value) { fifo_.push_back(value); }
    void operator<<(const T &value) { write(value); }

    T read() {
        if (fifo_.empty()) {
            // In hardware this would block forever: a producer/consumer size mismatch.
            std::fprintf(stderr, "hls::stream '%s': read from an empty stream (deadlock in hardware)\n",
                         name_.c_str());
            std::exit(3);
        }
        T value = fifo_.front();
        fifo_.pop_front();
        return value;
    }
    void read(T &value) { value = read(); }
    void operator>>(T &value) { value = read(); }
    bool read_nb(T &value) {
        if (fifo_.empty()) return false;
        value = read();
        return true;
    }
    bool write_nb(const T &value) {
        write(value);
        return true;
    }

    bool empty() const { return fifo_.empty(); }
    bool full() const { return false; }
    std::size_t size() const { return fifo_.size(); }
    const std::string &name() const { return name_; }

  private:
    std::string name_;
    std::deque<T> fifo_;
};

}  // namespace hls

#endif  // FLIPFLOW_CSIM_HLS_STREAM_H
