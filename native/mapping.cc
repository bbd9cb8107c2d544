// File mappings: windows (ArrayBuffers over reserved address space) into which ranges of files are mapped, so
// streamed merges read checkpoint tensors where the page cache holds them instead of copying them into buffers; and
// a read-ahead thread that brings a merge's ranges into the page cache ahead of it without copying them. A window is
// reserved once and each range is mapped into it in place of the last: a fresh ArrayBuffer per range (hundreds of MB,
// external memory to V8) made V8 scavenge at the next allocation and start a full marking every few ranges. The
// mapping is private and writable (copy-on-write: a kernel that writes into an input changes only its own copy, never
// the file). unmap releases a window at once (the buffer is detached, so JS sees it empty instead of touching freed
// pages); a window never unmapped is released when it is garbage-collected.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <unordered_map>
#include <vector>
#include "fused.h"
#include "registry.h"

namespace {

struct Mapping {
  void* addr;
  size_t length;
  // Bytes from addr that map a file now (the rest of the window maps zero pages).
  size_t filled;
  bool unmapped;
};

// Live mappings by the data pointer their buffer exposes, so unmap can find a buffer's mapping.
std::mutex liveLock;
std::unordered_map<const void*, Mapping*> live;

void finalize(Napi::Env, void* data, Mapping* m) {
  {
    std::lock_guard<std::mutex> g(liveLock);
    if (!m->unmapped) live.erase(data);
  }
  if (!m->unmapped) munmap(m->addr, m->length);
  delete m;
}

}  // namespace

// Opens `path` for reading and checks that [offset, offset + length) lies inside it (pages past the end of a
// mapped file raise SIGBUS when read): the descriptor, or −1 with `error` naming the file.
static int openRange(const std::string& path, int64_t offset, int64_t length, std::string& error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": " + std::strerror(errno);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) error = path + ": " + std::strerror(errno);
  else if (offset + length > st.st_size)
    error = path + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + length) + ") lie past the end of the file (" +
            std::to_string(st.st_size) + " bytes) — the file is truncated";
  if (error.empty()) return fd;
  close(fd);
  return -1;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

// Bytes [offset, offset + length) of a file mapped read-only and shared from the page boundary below `offset`, and
// unmapped when destroyed: pageCached and the read-ahead look at a file's pages through it without reading them into
// the process. `error` names the file when the range cannot be mapped.
struct SharedRange {
  void* addr = nullptr;
  size_t mapped = 0;
  std::string error;

  SharedRange(const std::string& path, int64_t offset, int64_t length) {
    const int fd = openRange(path, offset, length, error);
    if (fd < 0 || length == 0) {
      if (fd >= 0) close(fd);
      return;
    }
    const int64_t page = sysconf(_SC_PAGESIZE), start = offset / page * page;
    mapped = static_cast<size_t>(offset + length - start);
    void* at = mmap(nullptr, mapped, PROT_READ, MAP_SHARED, fd, start);
    if (at == MAP_FAILED) error = path + ": cannot map " + std::to_string(length) + " bytes at " + std::to_string(offset) + ": " + std::strerror(errno);
    else addr = at;
    close(fd);
  }
  SharedRange(const SharedRange&) = delete;
  SharedRange& operator=(const SharedRange&) = delete;
  ~SharedRange() {
    if (addr) munmap(addr, mapped);
  }

  // Whether every page is in the page cache now (mincore over the mapping, which is never read). For a file the
  // process may not write, Linux reports only the pages the process has mapped, so such a range reads as not cached.
  bool cached() const {
    if (!addr) return error.empty();
    const long page = sysconf(_SC_PAGESIZE);
    std::vector<unsigned char> resident((mapped + page - 1) / page);
    return mincore(addr, mapped, resident.data()) == 0 && std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; });
  }

  // Reads every page into the page cache by populating the mapping's page tables (MADV_POPULATE_READ, Linux 5.14+;
  // older kernels: one read per page), copying nothing: 0, or the errno of a failed read.
  int populate() const {
    if (!addr || madvise(addr, mapped, MADV_POPULATE_READ) == 0) return 0;
    if (errno != EINVAL) return errno;
    const long page = sysconf(_SC_PAGESIZE);
    volatile unsigned char sink;
    for (size_t i = 0; i < mapped; i += page) sink = static_cast<const unsigned char*>(addr)[i];
    (void)sink;
    return 0;
  }
};

// Maps zero pages over [addr + from, addr + to): readable, private, backed by no memory until written.
static bool zeroPages(void* addr, size_t from, size_t to) {
  if (to <= from) return true;
  return mmap(static_cast<char*>(addr) + from, to - from, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED;
}

// reserveWindow(bytes): a window of at least `bytes` (whole pages), reading as zeros until mapWindow maps a range into it.
PEFTJS_EXPORT(reserveWindow) {
  peftjs::Args a(info, "reserveWindow");
  const int64_t page = sysconf(_SC_PAGESIZE);
  const size_t length = static_cast<size_t>((std::max<int64_t>(1, peftjs::sizeArg(a, 0, "bytes")) + page - 1) / page * page);
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED) a.fail("cannot reserve a window of " + std::to_string(length) + " bytes: " + std::strerror(errno));
  auto* m = new Mapping{addr, length, 0, false};
  {
    std::lock_guard<std::mutex> g(liveLock);
    live[addr] = m;
  }
  return Napi::ArrayBuffer::New(info.Env(), addr, length, finalize, m);
}

// mapWindow(window, path, offset, length): maps bytes [offset, offset + length) of the file into the window from its
// start, from the page boundary below `offset`, replacing the range it held (the rest of the window reads as zeros);
// returns where `offset` lies in the window.
PEFTJS_EXPORT(mapWindow) {
  peftjs::Args a(info, "mapWindow");
  if (!info[0].IsArrayBuffer()) a.fail("argument 0 must be a window from reserveWindow");
  if (!info[1].IsString()) a.fail("argument 1 must be a path string");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  const std::string path = info[1].As<Napi::String>().Utf8Value();
  const int64_t offset = peftjs::sizeArg(a, 2, "offset"), length = peftjs::sizeArg(a, 3, "length");
  Mapping* m = nullptr;
  {
    std::lock_guard<std::mutex> g(liveLock);
    auto it = live.find(buffer.Data());
    if (it != live.end()) m = it->second;
  }
  if (m == nullptr) a.fail("argument 0 must be a window from reserveWindow that is not released");
  const int64_t page = sysconf(_SC_PAGESIZE), start = offset / page * page, skip = offset - start;
  const size_t span = static_cast<size_t>(skip + length);
  if (span > m->length) a.fail(path + ": " + std::to_string(length) + " bytes at " + std::to_string(offset) + " do not fit a window of " + std::to_string(m->length) + " bytes");
  std::string error;
  const int fd = openRange(path, offset, length, error);
  if (fd < 0) a.fail(error);
  // MAP_FIXED replaces what the window held; where the new range is shorter, zero pages replace the rest.
  const bool mapped = span == 0 || mmap(m->addr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, start) != MAP_FAILED;
  const int err = errno;
  close(fd);
  if (!mapped) {
    // A failed MAP_FIXED may leave a hole: zero pages over the whole window keep every view readable.
    zeroPages(m->addr, 0, m->length);
    m->filled = 0;
    a.fail(path + ": cannot map " + std::to_string(length) + " bytes at " + std::to_string(offset) + ": " + std::strerror(err));
  }
  const size_t filled = (span + page - 1) / page * page;
  if (!zeroPages(m->addr, filled, m->filled)) a.fail(std::string("cannot reset a window: ") + std::strerror(errno));
  m->filled = filled;
  return Napi::Number::New(info.Env(), static_cast<double>(skip));
}

// pageCached(path, offset, length): whether every page of the bytes [offset, offset + length) of the file is in the
// page cache (see SharedRange::cached).
PEFTJS_EXPORT(pageCached) {
  peftjs::Args a(info, "pageCached");
  if (!info[0].IsString()) a.fail("argument 0 must be a path string");
  const SharedRange range(info[0].As<Napi::String>().Utf8Value(), peftjs::sizeArg(a, 1, "offset"), peftjs::sizeArg(a, 2, "length"));
  if (!range.error.empty()) a.fail(range.error);
  return Napi::Boolean::New(info.Env(), range.cached());
}

namespace {

// A read-ahead for a streamed merge: a thread that brings each tensor's ranges into the page cache in the order the
// merge reads them, at most `ahead` bytes past the tensor the merge is on (at), so disk reads overlap the merge's
// compute and writes while the merge's own API stays synchronous. It reads a tensor from every checkpoint at once, a
// thread per range, kPiece bytes at a time (a disk serving several streams read a merge's inputs faster than one:
// cold linear merges 1.10 → 1.00 s, medians of 6 alternating runs on a 2-core VM), copying nothing (a read() into a
// buffer thrown away cost 0.33–1.06 s of system time per GB there, populating mappings 0.07 s), and skips tensors
// already wholly in the page cache (populating them cost a warm merge as much CPU as reading them). Being native, it
// starts reading at once: a worker thread's first read came 60–100 ms after it was created, on a busy 2-core VM. Read
// errors only cost the read-ahead: the merge's own reads report them.
class ReadAhead {
 public:
  struct Range {
    std::string path;
    int64_t offset, length;
  };
  static constexpr int64_t kPiece = 8 << 20;

  ReadAhead(std::vector<std::vector<Range>> tensors, double ahead) : tensors_(std::move(tensors)), ahead_(ahead), thread_([this] { run(); }) {}
  ~ReadAhead() { stop(); }

  // The merge has reached tensor t.
  void at(int64_t t) {
    {
      std::lock_guard<std::mutex> g(lock_);
      at_ = std::clamp<int64_t>(t, 0, static_cast<int64_t>(tensors_.size()));
    }
    moved_.notify_all();
  }

  // Stops the thread and waits for it (it finishes the piece it is reading).
  void stop() {
    {
      std::lock_guard<std::mutex> g(lock_);
      stop_ = true;
    }
    moved_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::vector<double> prefix(1, 0);
    for (const auto& t : tensors_) prefix.push_back(prefix.back() + std::accumulate(t.begin(), t.end(), 0.0, [](double s, const Range& r) { return s + r.length; }));
    for (size_t u = 0; u < tensors_.size(); u++) {
      {
        std::unique_lock<std::mutex> l(lock_);
        moved_.wait(l, [&] { return stop_ || prefix[u] - prefix[at_] <= ahead_; });
        if (stop_) return;
        if (static_cast<int64_t>(u) < at_) continue;
      }
      const std::vector<Range>& t = tensors_[u];
      if (std::all_of(t.begin(), t.end(), [](const Range& r) { return SharedRange(r.path, r.offset, r.length).cached(); })) continue;
      const int64_t longest = std::accumulate(t.begin(), t.end(), int64_t{0}, [](int64_t m, const Range& r) { return std::max(m, r.length); });
      for (int64_t done = 0; done < longest && !stopping(); done += kPiece) readPieces(t, done);
    }
  }

  bool stopping() {
    std::lock_guard<std::mutex> g(lock_);
    return stop_;
  }

  // Reads the next kPiece bytes (at most) of every range of a tensor from byte `done` on, a thread per range.
  static void readPieces(const std::vector<Range>& t, int64_t done) {
    std::vector<std::unique_ptr<SharedRange>> pieces;
    for (const Range& r : t)
      if (r.length > done) pieces.push_back(std::make_unique<SharedRange>(r.path, r.offset + done, std::min(kPiece, r.length - done)));
    std::vector<std::thread> threads;
    for (size_t j = 1; j < pieces.size(); j++) threads.emplace_back([&p = *pieces[j]] { p.populate(); });
    if (!pieces.empty()) pieces[0]->populate();
    for (std::thread& th : threads) th.join();
  }

  const std::vector<std::vector<Range>> tensors_;
  const double ahead_;
  std::mutex lock_;
  std::condition_variable moved_;
  int64_t at_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: it starts running once everything above is initialised
};

// Tags the handles readAheadStart returns.
constexpr napi_type_tag kReadAheadTag = {0x7065667473726561, 0x6468656164000001};

}  // namespace

// readAheadStart(paths, counts, offsets, lengths, aheadBytes): starts a ReadAhead over tensors whose ranges are listed
// in the merge's order (tensor t: the next counts[t] entries of paths, offsets and lengths); returns its handle, which
// stops the thread when garbage-collected if readAheadStop did not.
PEFTJS_EXPORT(readAheadStart) {
  peftjs::Args a(info, "readAheadStart");
  if (!info[0].IsArray()) a.fail("argument 0 must be an array of path strings");
  const Napi::Array paths = info[0].As<Napi::Array>();
  const int32_t* counts = a.i32(1);
  const double* offsets = a.f64(2);
  const double* lengths = a.f64(3);
  const double ahead = a.num(4);
  const size_t n = paths.Length();
  if (a.length(2) < n || a.length(3) < n) a.fail("offsets and lengths must hold a number per path");
  std::vector<std::vector<ReadAhead::Range>> tensors(a.length(1));
  size_t j = 0;
  for (size_t t = 0; t < tensors.size(); t++) {
    if (counts[t] < 0 || j + counts[t] > n) a.fail("counts must be ≥ 0 and sum to at most the number of paths");
    for (int32_t c = 0; c < counts[t]; c++, j++) {
      const Napi::Value p = paths.Get(static_cast<uint32_t>(j));
      if (!p.IsString()) a.fail("paths[" + std::to_string(j) + "] must be a path string");
      if (!(offsets[j] >= 0 && lengths[j] >= 0)) a.fail("offsets[" + std::to_string(j) + "] and lengths[" + std::to_string(j) + "] must be ≥ 0");
      tensors[t].push_back({p.As<Napi::String>().Utf8Value(), static_cast<int64_t>(offsets[j]), static_cast<int64_t>(lengths[j])});
    }
  }
  return peftjs::handleOf(info.Env(), new ReadAhead(std::move(tensors), ahead), kReadAheadTag);
}

// readAheadAt(handle, t): the merge has reached tensor t.
PEFTJS_EXPORT(readAheadAt) {
  peftjs::Args a(info, "readAheadAt");
  a.handle<ReadAhead>(0, kReadAheadTag, "readAheadStart").at(a.int64(1));
  return info.Env().Undefined();
}

// readAheadStop(handle): stops the read-ahead and waits for its thread (at most one piece's read); again, a no-op.
PEFTJS_EXPORT(readAheadStop) {
  peftjs::Args a(info, "readAheadStop");
  a.handle<ReadAhead>(0, kReadAheadTag, "readAheadStart").stop();
  return info.Env().Undefined();
}

// unmap(window): releases a reserveWindow buffer now and detaches it (its views become empty). A no-op for a buffer
// already released or not from reserveWindow.
PEFTJS_EXPORT(unmap) {
  peftjs::Args a(info, "unmap");
  if (!info[0].IsArrayBuffer()) a.fail("argument 0 must be an ArrayBuffer from reserveWindow");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  Mapping* m = nullptr;
  {
    std::lock_guard<std::mutex> g(liveLock);
    auto it = live.find(buffer.Data());
    if (it == live.end()) return info.Env().Undefined();
    m = it->second;
    live.erase(it);
  }
  munmap(m->addr, m->length);
  m->unmapped = true;
  buffer.Detach();
  return info.Env().Undefined();
}
