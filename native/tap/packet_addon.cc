// PacketHandle: an AF_PACKET socket on an existing interface as a JS object
// (N-API, node-addon-api). The packet-socket port (src/dataplane/packet-port.ts)
// is its one user.
//
// Data path, in stages:
//   open    packet_socket.cc: bound to the interface's ifindex (ETH_P_ALL),
//           PACKET_IGNORE_OUTGOING, promiscuous membership, buffers
//   read    a uv_poll_t on the fd, run by the main loop: when readable, one
//           recvmmsg of up to 64 frames, each into its own slot of the
//           scratch buffer (slot = the largest frame the port takes, plus one
//           byte, so an oversized frame shows as truncated); the captured
//           bytes packed into one JS Buffer; onBatch(buffer, records, count)
//           once, records = Uint32Array [offset, captured, wire]*count. Up to
//           8 batches a wake-up, then back to the loop.
//   write   write(frame): one non-blocking send.
//   fail    a read error that means the interface is gone (deleted: the
//           ifindex no longer resolves) stops polling and calls
//           onError(errno, code, syscall) once; ENETDOWN with the interface
//           still there (set down) is counted (`stats()`) and reading goes on.
//   close   stops polling and closes the socket.
#include "packet_addon.h"

#include <errno.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "napi_errors.h"
#include "packet_socket.h"
#include "polled_fd.h"

namespace vnet_tap {
namespace {

constexpr uint32_t kBatchFrames = 64;
constexpr int kBatchesPerWake = 8;
constexpr uint32_t kMaxSlot = 65536;

class PacketHandle : public PolledFd<PacketHandle> {
  friend class PolledFd<PacketHandle>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PacketHandle", {
      InstanceAccessor<&PacketHandle::GetFd>("fd"),
      InstanceAccessor<&PacketHandle::GetIfindex>("ifindex"),
      InstanceAccessor<&PacketHandle::GetIgnoreOutgoing>("ignoreOutgoing"),
      InstanceMethod<&PacketHandle::Start>("start"),
      InstanceMethod<&PacketHandle::Write>("write"),
      InstanceMethod<&PacketHandle::Stats>("stats"),
      InstanceMethod<&PacketHandle::Close>("close"),
    });
  }

  // new PacketHandle({ ifname, slot, rcvBuf, sndBuf, promisc })
  explicit PacketHandle(const Napi::CallbackInfo& info) : PolledFd<PacketHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "PacketHandle: options object required");
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("ifname").IsString() || !o.Get("slot").IsNumber()) throw Napi::TypeError::New(env, "PacketHandle: ifname and slot required");
    PacketOpenOptions opts;
    opts.ifname = o.Get("ifname").As<Napi::String>().Utf8Value();
    if (o.Get("rcvBuf").IsNumber()) opts.rcv_buf = o.Get("rcvBuf").As<Napi::Number>().Int32Value();
    if (o.Get("sndBuf").IsNumber()) opts.snd_buf = o.Get("sndBuf").As<Napi::Number>().Int32Value();
    if (o.Get("promisc").IsBoolean()) opts.promisc = o.Get("promisc").As<Napi::Boolean>();
    int64_t slot = o.Get("slot").As<Napi::Number>().Int64Value();
    if (slot < 64 || slot > kMaxSlot) throw Napi::RangeError::New(env, "PacketHandle: slot must be 64..65536 bytes");
    slot_ = static_cast<uint32_t>(slot);
    PacketOpenResult res;
    SysError e = OpenPacket(opts, &res);
    if (!e.ok()) throw SysErrorToJs(env, e);
    fd_ = res.fd;
    ifindex_ = res.ifindex;
    ignore_outgoing_ = res.ignore_outgoing;
  }

  ~PacketHandle() override { Shutdown(/*unref=*/false); }

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value GetIfindex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ifindex_); }
  Napi::Value GetIgnoreOutgoing(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ignore_outgoing_); }

  // start(onBatch, onError): begin polling; once only.
  void Start(const Napi::CallbackInfo& info) { StartPolling(info, "PacketHandle", "vnet:packet", static_cast<size_t>(slot_) * kBatchFrames); }

  // write(frame) -> bytes sent, or -errno (the frame was not delivered).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !IsBytes(info[0])) throw Napi::TypeError::New(env, "PacketHandle.write(frame: Uint8Array)");
    if (fd_ < 0) return Napi::Number::New(env, -EBADF);
    Napi::Uint8Array frame = info[0].As<Napi::Uint8Array>();
    const uint8_t* data = frame.Data();
    size_t len = frame.ElementLength();
    PacketWriteResult r = WritePackets(fd_, &data, &len, 1);
    if (r.written == 1) return Napi::Number::New(env, static_cast<double>(len));
    return Napi::Number::New(env, -(r.fatal != 0 ? r.fatal : (r.last_err != 0 ? r.last_err : EAGAIN)));
  }

  // stats() -> [outgoingSkipped, kernelDrops, downReads]: frames skipped as
  // transmissions, frames the kernel dropped (receive buffer full), reads
  // that found the interface down; kernel drops since the last call.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t drops = fd_ >= 0 ? TakeKernelDrops(fd_) : 0;
    Napi::Array out = Napi::Array::New(env, 3);
    out.Set(0u, Napi::Number::New(env, static_cast<double>(outgoing_)));
    out.Set(1u, Napi::Number::New(env, static_cast<double>(drops < 0 ? 0 : drops)));
    out.Set(2u, Napi::Number::New(env, static_cast<double>(down_reads_)));
    return out;
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(); }

  // Up to kBatchesPerWake batches, then back to the loop.
  void OnReadable(int status) {
    for (int i = 0; i < kBatchesPerWake && poll_ != nullptr; i++) {
      if (ReadBatch(status)) break;
      status = 0;
    }
  }

  // One recvmmsg, handed up; true when the socket is empty (or failed).
  bool ReadBatch(int status) {
    if (status < 0 && !InterfaceExists(ifindex_)) { Fail(-status, "poll"); return true; }
    PacketRecord recs[kBatchFrames];
    PacketReadResult r = ReadPackets(fd_, scratch_.get(), slot_, kBatchFrames, recs);
    outgoing_ += r.outgoing;
    if (r.err != 0) {
      // The socket's pending error (ENETDOWN when the interface went down or away) is reported once per event.
      if (IsFatalPacketError(r.err) || !InterfaceExists(ifindex_)) { Fail(InterfaceExists(ifindex_) ? r.err : ENODEV, "recvmmsg"); return true; }
      down_reads_++;
      return false;
    }
    if (r.count > 0 && !on_batch_.IsEmpty()) {
      size_t total = 0;
      for (uint32_t i = 0; i < r.count; i++) total += recs[i].captured;
      Napi::Env env = env_;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, total);
      Napi::Uint32Array out = Napi::Uint32Array::New(env, 3 * r.count);
      size_t at = 0;
      for (uint32_t i = 0; i < r.count; i++) {
        std::memcpy(buf.Data() + at, scratch_.get() + recs[i].offset, recs[i].captured);
        out[3 * i] = static_cast<uint32_t>(at);
        out[3 * i + 1] = recs[i].captured;
        out[3 * i + 2] = recs[i].wire;
        at += recs[i].captured;
      }
      EmitBatch({buf, out, Napi::Number::New(env, r.count)});
    }
    return r.empty;
  }

  int ifindex_ = 0;
  bool ignore_outgoing_ = false;
  uint32_t slot_ = 0;
  uint64_t outgoing_ = 0;
  uint64_t down_reads_ = 0;
};

}  // namespace

void RegisterPacket(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketHandle", PacketHandle::Define(env));
}

}  // namespace vnet_tap
