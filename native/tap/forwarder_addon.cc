// NativeForwarder: the JS face of forwarder.h (loaded by src/dataplane/native-forwarder.ts).
//
//   new NativeForwarder({ busyPollUs, ttlMs, capUs, budgetPercent }, onUp)   starts the thread
//       (capUs 0: no adaptive polling; busyPollUs > 0 overrides it)
//   attachTap(fd, hdrSize, mtu) / attachLink(fd, maxMessageBytes, highWater[, records]) -> id
//       records (a link switched to native records, records.h): per direction d = tx, rx:
//       dKey, dIv (Buffers), dSeq, dBytes, dGeneration (numbers), and dSecret (Buffer) when
//       rekeyRecords and rekeyBytes are given (vnet-records/2); maxRecords, maxBytes (numbers),
//       cipher (Buffer: a record begun); on /2 also rekeyAgeMs (0: no age threshold) and
//       txAgeMs (how long the send key has been in use: its start on this thread's clock)
//   detach(id) -> { backlog: Buffer, items, counts: Float64Array [rxF rxB txF txB txD],
//                   records?: { the same per-direction fields (keys as they are now), txAgeMs, cipher } }
//   recordsInfo(id) -> Float64Array [txGeneration txRecords txBytes txAgeMs rxGeneration rxRecords rxBytes]
//                      (a records link's keys' progress, no key), or undefined
//   dupFd(fd) -> a dup() of fd (close-on-exec): a TLS link's TCP socket for Node to read as plain bytes
//   writeLink(id, buffers[]) -> backlog bytes, or -errno
//   backlog(id), install(ingress, src, dst, target, countTraffic), flush()
//   takeCounters() -> { endpoints: Float64Array [id rxF rxB txF txB txD]*, traffic: Float64Array [src dst frames bytes]* }
//   poll() -> Float64Array [spins hits spinNs budgetDenied contended]   busy polling since the start
//   close()
//
//   (PollPolicy, the policy alone for its tests: poll_policy_addon.cc)
//
// Items that went up reach JS through a uv_async_t on the main loop: onUp(items)
// with items = [kind, endpoint, data (Buffer), records (Uint32Array | undefined), errno]*,
// then the forwarder is told they were handled (Ack), so the frames that
// came after them on the same ingress may take the native path again.
#include <errno.h>
#include <fcntl.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include <napi.h>

#include "forwarder.h"
#include "forwarder_addon.h"
#include "monotonic.h"
#include "poll_policy_addon.h"

namespace vnet_tap {
namespace {

class NativeForwarder : public Napi::ObjectWrap<NativeForwarder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeForwarder", {
      InstanceMethod<&NativeForwarder::AttachTap>("attachTap"),
      InstanceMethod<&NativeForwarder::AttachLink>("attachLink"),
      InstanceMethod<&NativeForwarder::Detach>("detach"),
      InstanceMethod<&NativeForwarder::WriteLink>("writeLink"),
      InstanceMethod<&NativeForwarder::Backlog>("backlog"),
      InstanceMethod<&NativeForwarder::Install>("install"),
      InstanceMethod<&NativeForwarder::Flush>("flush"),
      InstanceMethod<&NativeForwarder::TakeCounters>("takeCounters"),
      InstanceMethod<&NativeForwarder::Poll>("poll"),
      InstanceMethod<&NativeForwarder::RecordsInfo>("recordsInfo"),
      InstanceMethod<&NativeForwarder::Close>("close"),
    });
  }

  explicit NativeForwarder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeForwarder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "NativeForwarder({ busyPollUs, ttlMs, capUs, budgetPercent }, onUp)");
    }
    Napi::Object o = info[0].As<Napi::Object>();
    uint32_t busy = OptU32(o, "busyPollUs", 0);
    uint32_t ttl = OptU32(o, "ttlMs", 1000);
    PollPolicyOptions adaptive = PollPolicyOptionsFrom(o);
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "NativeForwarder: no event loop");
    on_up_ = Napi::Persistent(info[1].As<Napi::Function>());
    async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "vnet:forwarder");
    env_ = env;
    async_ = new uv_async_t();
    async_->data = this;
    if (uv_async_init(loop, async_, &NativeForwarder::OnAsync) != 0) {
      delete async_;
      async_ = nullptr;
      throw Napi::Error::New(env, "NativeForwarder: uv_async_init failed");
    }
    uv_async_t* async = async_;
    fwd_ = std::make_unique<Forwarder>(busy, adaptive, ttl, [async] { uv_async_send(async); });
    int err = fwd_->Start();
    if (err != 0) {
      Shutdown(false);
      throw Napi::Error::New(env, std::string("NativeForwarder: cannot start its thread: ") + std::strerror(err));
    }
    Ref();
  }

  ~NativeForwarder() override { Shutdown(false); }

 private:
  Forwarder& Fwd(Napi::Env env) {
    if (!fwd_) throw Napi::Error::New(env, "NativeForwarder: closed");
    return *fwd_;
  }

  static uint32_t U32(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "NativeForwarder: number expected");
    return info[i].As<Napi::Number>().Uint32Value();
  }

  static uint64_t U48(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "NativeForwarder: MAC number expected");
    double v = info[i].As<Napi::Number>().DoubleValue();
    if (!(v >= 0 && v < 281474976710656.0)) throw Napi::RangeError::New(info.Env(), "NativeForwarder: not a 48-bit MAC");
    return static_cast<uint64_t>(v);
  }

  Napi::Value Attached(Napi::Env env, int id) {
    if (id < 0) {
      Napi::Error err = Napi::Error::New(env, std::string("NativeForwarder: attach: ") + std::strerror(-id));
      err.Set("errno", Napi::Number::New(env, -id));
      throw err;
    }
    return Napi::Number::New(env, id);
  }

  Napi::Value AttachTap(const Napi::CallbackInfo& info) {
    return Attached(info.Env(), Fwd(info.Env()).AttachTap(static_cast<int>(U32(info, 0)), static_cast<int>(U32(info, 1)), static_cast<int>(U32(info, 2))));
  }

  static void Bytes(Napi::Env env, Napi::Object o, const std::string& key, uint8_t* out, size_t len) {
    Napi::Value v = o.Get(key);
    if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != len) throw Napi::TypeError::New(env, "NativeForwarder.attachLink: records." + key + " must be a Buffer of " + std::to_string(len) + " bytes");
    std::memcpy(out, v.As<Napi::Buffer<uint8_t>>().Data(), len);
  }

  static uint64_t Count(Napi::Env env, Napi::Object o, const std::string& key) {
    Napi::Value v = o.Get(key);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0)) throw Napi::TypeError::New(env, "NativeForwarder.attachLink: records." + key + " must be a safe integer");
    return static_cast<uint64_t>(d);
  }

  static void DirectionFromJs(Napi::Env env, Napi::Object o, const std::string& d, bool rekey, RecordDirectionState* out) {
    Bytes(env, o, d + "Key", out->key, sizeof out->key);
    Bytes(env, o, d + "Iv", out->iv, sizeof out->iv);
    if (rekey) Bytes(env, o, d + "Secret", out->secret, sizeof out->secret);
    out->generation = Count(env, o, d + "Generation");
    out->seq = Count(env, o, d + "Seq");
    out->bytes = Count(env, o, d + "Bytes");
  }

  static void DirectionToJs(Napi::Env env, Napi::Object o, const std::string& d, bool rekey, const RecordDirectionState& in) {
    o.Set(d + "Key", Napi::Buffer<uint8_t>::Copy(env, in.key, sizeof in.key));
    o.Set(d + "Iv", Napi::Buffer<uint8_t>::Copy(env, in.iv, sizeof in.iv));
    if (rekey) o.Set(d + "Secret", Napi::Buffer<uint8_t>::Copy(env, in.secret, sizeof in.secret));
    o.Set(d + "Generation", Napi::Number::New(env, static_cast<double>(in.generation)));
    o.Set(d + "Seq", Napi::Number::New(env, static_cast<double>(in.seq)));
    o.Set(d + "Bytes", Napi::Number::New(env, static_cast<double>(in.bytes)));
  }

  Napi::Value AttachLink(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = static_cast<int>(U32(info, 0));
    uint32_t max = U32(info, 1), hw = U32(info, 2);
    if (info.Length() < 4 || info[3].IsUndefined()) return Attached(env, Fwd(env).AttachLink(fd, max, hw, nullptr, {}));
    if (!info[3].IsObject()) throw Napi::TypeError::New(env, "NativeForwarder.attachLink: records must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    RecordState st;
    std::vector<uint8_t> cipher;
    try {  // a bad field throws: the keys read so far are wiped first
      st.rekey = !o.Get("rekeyRecords").IsUndefined() || !o.Get("rekeyBytes").IsUndefined();
      DirectionFromJs(env, o, "tx", st.rekey, &st.tx);
      DirectionFromJs(env, o, "rx", st.rekey, &st.rx);
      st.max_records = Count(env, o, "maxRecords");
      st.max_bytes = Count(env, o, "maxBytes");
      if (st.rekey) {
        st.rekey_records = Count(env, o, "rekeyRecords");
        st.rekey_bytes = Count(env, o, "rekeyBytes");
        st.rekey_age_ms = o.Get("rekeyAgeMs").IsUndefined() ? 0 : Count(env, o, "rekeyAgeMs");
      }
      // Capped at 2^40 ms (34 years), so that it fits in nanoseconds: older than any threshold anyway.
      const uint64_t age_ns = std::min<uint64_t>(o.Get("txAgeMs").IsUndefined() ? 0 : Count(env, o, "txAgeMs"), 1ull << 40) * 1000000ull;
      st.tx_started_ns = static_cast<int64_t>(MonotonicNs()) - static_cast<int64_t>(age_ns);
      Napi::Value c = o.Get("cipher");
      if (!c.IsBuffer()) throw Napi::TypeError::New(env, "NativeForwarder.attachLink: records.cipher must be a Buffer");
      Napi::Buffer<uint8_t> cb = c.As<Napi::Buffer<uint8_t>>();
      cipher.assign(cb.Data(), cb.Data() + cb.Length());
    } catch (...) {
      st.Wipe();
      throw;
    }
    int id = Fwd(env).AttachLink(fd, max, hw, &st, cipher);
    st.Wipe();
    return Attached(env, id);
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint8_t> backlog;
    std::vector<UpItem> items;
    EndpointCounters c;
    bool has_records = false;
    RecordState rs;
    std::vector<uint8_t> cipher;
    Fwd(env).Detach(U32(info, 0), &backlog, &items, &c, &has_records, &rs, &cipher);
    Napi::Object out = Napi::Object::New(env);
    Napi::Float64Array counts = Napi::Float64Array::New(env, 5);
    double row[5] = {double(c.rx_frames), double(c.rx_bytes), double(c.tx_frames), double(c.tx_bytes), double(c.tx_dropped)};
    std::memcpy(counts.Data(), row, sizeof row);
    out.Set("counts", counts);
    out.Set("backlog", Napi::Buffer<uint8_t>::Copy(env, backlog.data(), backlog.size()));
    out.Set("items", ItemsToJs(env, items));
    if (has_records) {
      Napi::Object r = Napi::Object::New(env);
      DirectionToJs(env, r, "tx", rs.rekey, rs.tx);
      DirectionToJs(env, r, "rx", rs.rekey, rs.rx);
      const uint64_t now = MonotonicNs();
      r.Set("txAgeMs", Napi::Number::New(env, static_cast<double>(rs.TxAgeNs(now) / 1000000)));
      r.Set("cipher", Napi::Buffer<uint8_t>::Copy(env, cipher.data(), cipher.size()));
      out.Set("records", r);
    }
    rs.Wipe();
    return out;
  }

  Napi::Value RecordsInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RecordKeyInfo k;
    if (!Fwd(env).RecordsInfo(U32(info, 0), &k)) return env.Undefined();
    Napi::Float64Array out = Napi::Float64Array::New(env, 7);
    double row[7] = {double(k.tx_generation), double(k.tx_records), double(k.tx_bytes), double(k.tx_age_ms), double(k.rx_generation), double(k.rx_records), double(k.rx_bytes)};
    std::memcpy(out.Data(), row, sizeof row);
    return out;
  }

  Napi::Value WriteLink(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = U32(info, 0);
    if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "NativeForwarder.writeLink(id, buffers[])");
    Napi::Array bufs = info[1].As<Napi::Array>();
    std::vector<struct iovec> iov(bufs.Length());
    for (uint32_t i = 0; i < bufs.Length(); i++) {
      Napi::Value v = bufs.Get(i);
      if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "NativeForwarder.writeLink: buffers only");
      Napi::Uint8Array b = v.As<Napi::Uint8Array>();
      iov[i] = {b.Data(), b.ElementLength()};
    }
    return Napi::Number::New(env, static_cast<double>(Fwd(env).WriteLink(id, iov.data(), static_cast<int>(iov.size()))));
  }

  Napi::Value Backlog(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(Fwd(info.Env()).Backlog(U32(info, 0))));
  }

  void Install(const Napi::CallbackInfo& info) {
    Fwd(info.Env()).Install(U32(info, 0), U48(info, 1), U48(info, 2), U32(info, 3), info.Length() > 4 && info[4].ToBoolean());
  }

  void Flush(const Napi::CallbackInfo& info) { Fwd(info.Env()).Flush(); }

  Napi::Value TakeCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::pair<uint32_t, EndpointCounters>> eps;
    std::vector<TrafficDelta> traffic;
    Fwd(env).TakeCounters(&eps, &traffic);
    Napi::Float64Array e = Napi::Float64Array::New(env, eps.size() * 6);
    for (size_t i = 0; i < eps.size(); i++) {
      const EndpointCounters& c = eps[i].second;
      double row[6] = {double(eps[i].first), double(c.rx_frames), double(c.rx_bytes), double(c.tx_frames), double(c.tx_bytes), double(c.tx_dropped)};
      std::memcpy(e.Data() + i * 6, row, sizeof row);
    }
    Napi::Float64Array t = Napi::Float64Array::New(env, traffic.size() * 4);
    for (size_t i = 0; i < traffic.size(); i++) {
      double row[4] = {double(traffic[i].src), double(traffic[i].dst), double(traffic[i].frames), double(traffic[i].bytes)};
      std::memcpy(t.Data() + i * 4, row, sizeof row);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("endpoints", e);
    out.Set("traffic", t);
    return out;
  }

  Napi::Value Poll(const Napi::CallbackInfo& info) {
    PollStats p = Fwd(info.Env()).Poll();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), 5);
    double row[5] = {double(p.spins), double(p.hits), double(p.spin_ns), double(p.denied), double(p.contended)};
    std::memcpy(out.Data(), row, sizeof row);
    return out;
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(true); }

  static Napi::Array ItemsToJs(Napi::Env env, std::vector<UpItem>& items) {
    Napi::Array arr = Napi::Array::New(env, items.size() * 5);
    uint32_t k = 0;
    for (UpItem& item : items) {
      arr.Set(k++, Napi::Number::New(env, item.kind));
      arr.Set(k++, Napi::Number::New(env, item.endpoint));
      arr.Set(k++, Napi::Buffer<uint8_t>::Copy(env, item.data.data(), item.data.size()));
      if (item.records.empty()) {
        arr.Set(k++, env.Undefined());
      } else {
        Napi::Uint32Array r = Napi::Uint32Array::New(env, item.records.size());
        std::memcpy(r.Data(), item.records.data(), item.records.size() * sizeof(uint32_t));
        arr.Set(k++, r);
      }
      arr.Set(k++, Napi::Number::New(env, item.err));
    }
    return arr;
  }

  static void OnAsync(uv_async_t* handle) {
    auto* self = static_cast<NativeForwarder*>(handle->data);
    if (self == nullptr || !self->fwd_) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    std::vector<UpItem> items;
    self->fwd_->TakeUp(&items);
    if (items.empty()) {
      self->fwd_->Ack();
      return;
    }
    try {
      Napi::Array arr = ItemsToJs(env, items);
      self->on_up_.MakeCallback(self->Value(), {arr}, *self->async_ctx_);
    } catch (const Napi::Error& e) {
      if (self->fwd_) self->fwd_->Ack();
      napi_fatal_exception(env, e.Value());
      return;
    }
    if (self->fwd_) self->fwd_->Ack();
  }

  // Stops the thread and closes every dup()ed fd; idempotent.
  void Shutdown(bool unref) {
    bool was_running = fwd_ != nullptr;
    fwd_.reset();
    if (async_ != nullptr) {
      async_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async_ = nullptr;
    }
    on_up_.Reset();
    async_ctx_.reset();
    if (unref && was_running) Unref();
  }

  std::unique_ptr<Forwarder> fwd_;
  uv_async_t* async_ = nullptr;
  Napi::Env env_ = Napi::Env(nullptr);
  Napi::FunctionReference on_up_;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
};

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "dupFd(fd)");
  int d = ::fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    Napi::Error err = Napi::Error::New(env, std::string("dupFd: ") + std::strerror(errno));
    err.Set("errno", Napi::Number::New(env, errno));
    throw err;
  }
  return Napi::Number::New(env, d);
}

}  // namespace

void RegisterForwarder(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeForwarder", NativeForwarder::Define(env));
  RegisterPollPolicy(env, exports);
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
}

}  // namespace vnet_tap
