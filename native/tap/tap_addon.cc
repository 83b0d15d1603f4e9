// vnet_tap: a TAP device as a JS object (N-API, node-addon-api).
//
// Data path, in stages:
//   open    /dev/net/tun, TUNSETIFF (IFF_TAP|IFF_NO_PI[|IFF_VNET_HDR][|IFF_MULTI_QUEUE]),
//           offloads, MAC/MTU/up; or attach one more queue to an existing
//           device, in another network namespace if asked  (tap_fd.cc)
//   read    a uv_poll_t on the fd, run by the main loop: when readable, read frames
//           until EAGAIN or a batch limit (64 frames / 1 MiB) into one scratch
//           buffer, copy the batch into one JS Buffer, call onBatch(buffer,
//           records, count) once; records = Uint32Array [offset, length]*count.
//           With IFF_VNET_HDR each record is virtio_net_hdr + frame; JS splits.
//   write   synchronous non-blocking writev([vnet_hdr, frame]); writeBatch loops in C++.
//   fail    a read error other than EAGAIN (device deleted: EBADFD/EIO/...) stops
//           polling and calls onError(errno, code, syscall) once.
//   hand-over  (one device, two queues: this one leaving, a newer one taking over)
//           steer(1) sends every new frame to the newer queue; drain() reads
//           what is still queued here, synchronously, through onBatch; close()
//           detaches (the kernel drops what is left, which is nothing by then).
//   close   stops polling and closes the fd.
//   native  setPolling(false) while the native forwarder (forwarder.h) serves
//           the device; setPolling(true) when it lets go.
//
// No libuv thread-pool work: reads happen on the main thread only when the
// kernel says data is ready, and never block (O_NONBLOCK).
#include <errno.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <napi.h>

#include "forwarder_addon.h"
#include "napi_errors.h"
#include "packet_addon.h"
#include "polled_fd.h"
#include "process_fd_addon.h"
#include "ram_digest_addon.h"
#include "tap_fd.h"

namespace vnet_tap {
namespace {

constexpr size_t kBatchBytes = 1 << 20;            // scratch for one batch
constexpr size_t kMaxRecord = 65536 + 512;         // largest read: 64 KiB GSO frame + headers
constexpr uint32_t kMaxBatchFrames = 64;
constexpr int kMaxDrainBatches = 1024;             // drain(): at most 64 Ki frames

// Write errors that mean only "this frame was not delivered" (queue full, bad
// frame or header); anything else means the device is gone.
// EIO: the interface is down (e.g. just moved into a VM's namespace and not
// yet brought up there); the frame is lost, the device is fine.
bool IsFrameLevelError(int err) {
  return err == EIO || err == EAGAIN || err == ENOBUFS || err == EINVAL || err == EMSGSIZE || err == EFAULT;
}

class TapHandle : public PolledFd<TapHandle> {
  friend class PolledFd<TapHandle>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TapHandle", {
      InstanceAccessor<&TapHandle::GetName>("name"),
      InstanceAccessor<&TapHandle::GetFd>("fd"),
      InstanceAccessor<&TapHandle::GetVnetHdrSize>("vnetHdrSize"),
      InstanceAccessor<&TapHandle::GetOffloadFlags>("offloadFlags"),
      InstanceAccessor<&TapHandle::GetMultiQueue>("multiQueue"),
      InstanceMethod<&TapHandle::Steer>("steer"),
      InstanceMethod<&TapHandle::DrainNow>("drain"),
      InstanceMethod<&TapHandle::Start>("start"),
      InstanceMethod<&TapHandle::SetPolling>("setPolling"),
      InstanceMethod<&TapHandle::Write>("write"),
      InstanceMethod<&TapHandle::WriteBatch>("writeBatch"),
      InstanceMethod<&TapHandle::Close>("close"),
    });
  }

  // new TapHandle({ name, netns, attach, multiQueue, vnetHdr, vnetHdrSize, offload, persist, mac, mtu, up })
  explicit TapHandle(const Napi::CallbackInfo& info) : PolledFd<TapHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "TapHandle: options object required");
    Napi::Object o = info[0].As<Napi::Object>();
    OpenOptions opts;
    if (o.Has("name") && o.Get("name").IsString()) opts.name = o.Get("name").As<Napi::String>().Utf8Value();
    if (o.Has("netns") && o.Get("netns").IsString()) opts.netns = o.Get("netns").As<Napi::String>().Utf8Value();
    opts.attach = o.Get("attach").ToBoolean();
    opts.multi_queue = o.Get("multiQueue").ToBoolean();
    opts.vnet_hdr = o.Get("vnetHdr").ToBoolean();
    if (o.Get("vnetHdrSize").IsNumber()) opts.vnet_hdr_size = o.Get("vnetHdrSize").As<Napi::Number>().Int32Value();
    if (o.Get("offload").IsBoolean()) opts.offload = o.Get("offload").As<Napi::Boolean>();
    if (o.Get("persist").IsBoolean()) opts.persist = o.Get("persist").As<Napi::Boolean>() ? 1 : 0;
    if (o.Get("mtu").IsNumber()) opts.mtu = o.Get("mtu").As<Napi::Number>().Int32Value();
    opts.up = o.Get("up").ToBoolean();
    Napi::Value mac = o.Get("mac");
    if (mac.IsTypedArray()) {
      Napi::Uint8Array bytes = mac.As<Napi::Uint8Array>();
      if (bytes.TypedArrayType() != napi_uint8_array || bytes.ElementLength() != 6) {
        throw Napi::TypeError::New(env, "TapHandle: mac must be 6 bytes");
      }
      std::memcpy(opts.mac, bytes.Data(), 6);
      opts.has_mac = true;
    }
    OpenResult res;
    SysError e = OpenTap(opts, &res);
    if (!e.ok()) throw SysErrorToJs(env, e);
    fd_ = res.fd;
    name_ = res.name;
    hdr_size_ = res.vnet_hdr_size;
    offload_flags_ = res.offload_flags;
    multi_queue_ = res.multi_queue;
  }

  ~TapHandle() override { Shutdown(/*unref=*/false); }

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value GetVnetHdrSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), hdr_size_); }
  Napi::Value GetOffloadFlags(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), offload_flags_); }
  Napi::Value GetMultiQueue(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), multi_queue_); }

  // steer(queue) -> 0 or errno: every frame to queue `queue` (-1: back to the flow hash).
  Napi::Value Steer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "TapHandle.steer(queue: number)");
    if (fd_ < 0) return Napi::Number::New(env, EBADF);
    SysError e = SetSteering(fd_, info[0].As<Napi::Number>().Int32Value());
    if (!e.ok()) throw SysErrorToJs(env, e);
    return Napi::Number::New(env, 0);
  }

  // drain() -> frames read: reads until the queue is empty, now, handing each
  // batch to onBatch before returning (only while started). Bounded (a queue
  // holds tx_queue_len frames, 1000 by default), in case frames keep coming.
  Napi::Value DrainNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t total = 0;
    if (poll_ == nullptr || fd_ < 0) return Napi::Number::New(env, 0);
    Napi::Object keep_alive = Value();
    (void)keep_alive;
    for (int batches = 0; batches < kMaxDrainBatches; batches++) {
      uint32_t n = 0;
      bool empty = Drain(0, &n);
      total += n;
      if (empty || poll_ == nullptr || fd_ < 0) break;
    }
    return Napi::Number::New(env, total);
  }

  // start(onBatch, onError): begin polling; once only.
  void Start(const Napi::CallbackInfo& info) { StartPolling(info, "TapHandle", "vnet:tap", kBatchBytes); }

  // setPolling(on): stop or restart the main loop's reads while started (the
  // native forwarder reads the device meanwhile, through its own dup of the fd).
  void SetPolling(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (poll_ == nullptr) throw Napi::Error::New(env, "TapHandle: not polling");
    int rc = info.Length() > 0 && info[0].ToBoolean() ? uv_poll_start(poll_, UV_READABLE, &TapHandle::OnPoll) : uv_poll_stop(poll_);
    if (rc != 0) throw SysErrorToJs(env, SysError{-rc, "uv_poll_start"});
  }

  // write(frame, hdr?) -> bytes written, or -errno (the frame was not delivered).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Number::New(env, -EBADF);
    if (info.Length() < 1 || !IsBytes(info[0])) throw Napi::TypeError::New(env, "TapHandle.write(frame: Uint8Array, hdr?)");
    Napi::Uint8Array frame = info[0].As<Napi::Uint8Array>();
    const uint8_t* hdr = nullptr;
    size_t hdr_len = 0;
    if (info.Length() >= 2 && IsBytes(info[1])) {
      Napi::Uint8Array h = info[1].As<Napi::Uint8Array>();
      hdr = h.Data();
      hdr_len = h.ElementLength();
    }
    ssize_t w = WriteFrame(fd_, hdr_size_, hdr, hdr_len, frame.Data(), frame.ElementLength());
    return Napi::Number::New(env, static_cast<double>(w));
  }

  // writeBatch(frames, hdrs?) -> [written, dropped, fatalErrno]; stops at the first fatal error.
  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "TapHandle.writeBatch(frames[], hdrs?[])");
    Napi::Array frames = info[0].As<Napi::Array>();
    Napi::Array hdrs;
    bool has_hdrs = info.Length() >= 2 && info[1].IsArray();
    if (has_hdrs) hdrs = info[1].As<Napi::Array>();
    uint32_t written = 0, dropped = 0;
    int fatal = fd_ < 0 ? EBADF : 0;
    uint32_t n = frames.Length();
    for (uint32_t i = 0; i < n && fatal == 0; i++) {
      Napi::Value f = frames.Get(i);
      if (!IsBytes(f)) { dropped++; continue; }
      Napi::Uint8Array frame = f.As<Napi::Uint8Array>();
      const uint8_t* hdr = nullptr;
      size_t hdr_len = 0;
      if (has_hdrs && i < hdrs.Length()) {
        Napi::Value h = hdrs.Get(i);
        if (IsBytes(h)) { hdr = h.As<Napi::Uint8Array>().Data(); hdr_len = h.As<Napi::Uint8Array>().ElementLength(); }
      }
      ssize_t w = WriteFrame(fd_, hdr_size_, hdr, hdr_len, frame.Data(), frame.ElementLength());
      if (w >= 0) written++;
      else if (IsFrameLevelError(static_cast<int>(-w))) dropped++;
      else fatal = static_cast<int>(-w);
    }
    if (fatal != 0) dropped += n - written - dropped;
    Napi::Array out = Napi::Array::New(env, 3);
    out.Set(0u, Napi::Number::New(env, written));
    out.Set(1u, Napi::Number::New(env, dropped));
    out.Set(2u, Napi::Number::New(env, fatal));
    return out;
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(); }

  void OnReadable(int status) { Drain(status, nullptr); }

  // Reads one batch; on a device-level error reports it and stops polling.
  // True when the read queue was found empty (EAGAIN); *frames gets the count.
  bool Drain(int status, uint32_t* frames) {
    bool empty = false;
    int fatal = 0;
    const char* syscall = "read";
    if (status < 0) {
      // libuv saw POLLERR (the tun file lost its device). read() tells us why.
      fatal = -status;
      syscall = "poll";
    }
    uint32_t records[2 * kMaxBatchFrames];
    uint32_t count = 0;
    size_t used = 0;
    while (fd_ >= 0 && count < kMaxBatchFrames && kBatchBytes - used >= kMaxRecord) {
      ssize_t n = ::read(fd_, scratch_.get() + used, kMaxRecord);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) { empty = true; break; }
        fatal = errno;
        syscall = "read";
        break;
      }
      if (n == 0) { fatal = EIO; syscall = "read"; break; }
      records[2 * count] = static_cast<uint32_t>(used);
      records[2 * count + 1] = static_cast<uint32_t>(n);
      count++;
      used += static_cast<size_t>(n);
    }
    if (count > 0 && !on_batch_.IsEmpty()) {
      Napi::Env env = env_;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, scratch_.get(), used);
      Napi::Uint32Array recs = Napi::Uint32Array::New(env, 2 * count);
      std::memcpy(recs.Data(), records, sizeof(uint32_t) * 2 * count);
      EmitBatch({buf, recs, Napi::Number::New(env, count)});
    }
    if (frames != nullptr) *frames = count;
    if (fatal != 0) Fail(fatal, syscall);
    return empty || fatal != 0;
  }

  std::string name_;
  int hdr_size_ = 0;
  unsigned offload_flags_ = 0;
  bool multi_queue_ = false;
};

}  // namespace
}  // namespace vnet_tap

static Napi::Object InitVnetTap(Napi::Env env, Napi::Object exports) {
  exports.Set("TapHandle", vnet_tap::TapHandle::Define(env));
  vnet_tap::RegisterForwarder(env, exports);
  vnet_tap::RegisterPacket(env, exports);
  vnet_tap::RegisterRamDigest(env, exports);
  vnet_tap::RegisterProcessFd(env, exports);
  return exports;
}

NODE_API_MODULE(vnet_tap, InitVnetTap)
