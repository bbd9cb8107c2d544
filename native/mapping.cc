// File mappings: windows (ArrayBuffers over reserved address space) into which ranges of files are mapped, so
// streamed merges read checkpoint tensors where the page cache holds them instead of copying them into buffers; and
// a read-ahead that brings a range into the page cache without copying it. A window is reserved once and each range
// is mapped into it in place of the last: a fresh ArrayBuffer per range (hundreds of MB, external memory to V8) made
// V8 scavenge at the next allocation and start a full marking every few ranges. The mapping is private and writable
// (copy-on-write: a kernel that writes into an input changes only its own copy, never the file). unmap releases a
// window at once (the buffer is detached, so JS sees it empty instead of touching freed pages); a window never
// unmapped is released when it is garbage-collected.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
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
// mapped file raise SIGBUS when read): the descriptor, or a failure naming the file.
static int openRange(peftjs::Args& a, const std::string& path, int64_t offset, int64_t length) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) a.fail(path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    a.fail(path + ": " + std::strerror(err));
  }
  if (offset + length > st.st_size) {
    close(fd);
    a.fail(path + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + length) + ") lie past the end of the file (" +
           std::to_string(st.st_size) + " bytes) — the file is truncated");
  }
  return fd;
}

// Maps [offset, offset + length) of `fd` from the page boundary below `offset`: the mapping's start and length, and
// where the range starts in it. Closes `fd`.
static void* mapRange(peftjs::Args& a, const std::string& path, int fd, int64_t offset, int64_t length, int prot, int flags, size_t& mapped, int64_t& skip) {
  const int64_t page = sysconf(_SC_PAGESIZE), start = offset / page * page;
  skip = offset - start;
  mapped = static_cast<size_t>(length + skip);
  void* addr = mmap(nullptr, mapped, prot, flags, fd, start);
  const int err = errno;
  close(fd);
  if (addr == MAP_FAILED) a.fail(path + ": cannot map " + std::to_string(length) + " bytes at " + std::to_string(offset) + ": " + std::strerror(err));
  return addr;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

// Populates the page tables of a mapping by reading its pages (MADV_POPULATE_READ, Linux 5.14+; older kernels: one
// read per page): 0, or the errno of a failed read.
static int populate(void* addr, size_t mapped) {
  if (madvise(addr, mapped, MADV_POPULATE_READ) == 0) return 0;
  if (errno != EINVAL) return errno;
  const long page = sysconf(_SC_PAGESIZE);
  volatile unsigned char sink;
  for (size_t i = 0; i < mapped; i += page) sink = static_cast<const unsigned char*>(addr)[i];
  (void)sink;
  return 0;
}

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
  const int fd = openRange(a, path, offset, length);
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
// page cache (mincore over a mapping that is never read). For a file the process may not write, Linux reports only
// the pages the process has mapped, so such a range reads as not cached.
PEFTJS_EXPORT(pageCached) {
  peftjs::Args a(info, "pageCached");
  if (!info[0].IsString()) a.fail("argument 0 must be a path string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const int64_t offset = peftjs::sizeArg(a, 1, "offset"), length = peftjs::sizeArg(a, 2, "length");
  if (length == 0) return Napi::Boolean::New(info.Env(), true);
  size_t mapped;
  int64_t skip;
  void* addr = mapRange(a, path, openRange(a, path, offset, length), offset, length, PROT_READ, MAP_SHARED, mapped, skip);
  const long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> resident((mapped + page - 1) / page);
  const bool all = mincore(addr, mapped, resident.data()) == 0 && std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; });
  munmap(addr, mapped);
  return Napi::Boolean::New(info.Env(), all);
}

// readAhead(paths, offsets, lengths): blocks until the byte ranges [offsets[j], offsets[j] + lengths[j]) of the files
// paths[j] are in the page cache, without copying them anywhere: each range is mapped, its page tables populated
// (MADV_POPULATE_READ, Linux 5.14+; older kernels: one read per page) and unmapped, the ranges concurrently (one
// thread each), as a merge reads a tensor from every checkpoint at once: a disk serving several streams read a merge's
// inputs faster than one (cold linear merges 1.10 → 1.00 s, medians of 6 alternating runs on a VM). A read-ahead
// worker costs the CPU a few percent of what read() into a buffer does (measured on a VM: 1.08 GB cold, 0.07 s of
// system time against 0.33–1.06 s).
PEFTJS_EXPORT(readAhead) {
  peftjs::Args a(info, "readAhead");
  if (!info[0].IsArray()) a.fail("argument 0 must be an array of path strings");
  const Napi::Array paths = info[0].As<Napi::Array>();
  const size_t k = paths.Length();
  const double* offsets = a.f64(1);
  const double* lengths = a.f64(2);
  if (a.length(1) < k || a.length(2) < k) a.fail("offsets and lengths must hold a number per path");
  struct Range {
    std::string path;
    void* addr = nullptr;
    size_t mapped = 0;
    int err = 0;
  };
  std::vector<Range> ranges(k);
  const auto unmapAll = [&] {
    for (Range& r : ranges)
      if (r.addr) munmap(r.addr, r.mapped);
  };
  try {
    for (size_t j = 0; j < k; j++) {
      const Napi::Value p = paths.Get(static_cast<uint32_t>(j));
      if (!p.IsString()) a.fail("paths[" + std::to_string(j) + "] must be a path string");
      Range& r = ranges[j];
      r.path = p.As<Napi::String>().Utf8Value();
      const int64_t offset = static_cast<int64_t>(offsets[j]), length = static_cast<int64_t>(lengths[j]);
      if (!(offsets[j] >= 0 && lengths[j] >= 0)) a.fail(r.path + ": offset and length must be ≥ 0");
      if (length == 0) continue;
      int64_t skip;
      r.addr = mapRange(a, r.path, openRange(a, r.path, offset, length), offset, length, PROT_READ, MAP_SHARED, r.mapped, skip);
    }
  } catch (...) {
    unmapAll();
    throw;
  }
  std::vector<std::thread> threads;
  for (size_t j = 1; j < k; j++)
    if (ranges[j].addr) threads.emplace_back([&r = ranges[j]] { r.err = populate(r.addr, r.mapped); });
  if (k > 0 && ranges[0].addr) ranges[0].err = populate(ranges[0].addr, ranges[0].mapped);
  for (std::thread& t : threads) t.join();
  unmapAll();
  for (size_t j = 0; j < k; j++)
    if (ranges[j].err != 0)
      a.fail(ranges[j].path + ": cannot read " + std::to_string(static_cast<int64_t>(lengths[j])) + " bytes at " + std::to_string(static_cast<int64_t>(offsets[j])) + ": " +
             std::strerror(ranges[j].err));
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
