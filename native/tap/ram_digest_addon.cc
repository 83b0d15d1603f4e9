// The JS face of xxh64.h and ram_digest.h (loaded by src/host/ram-digest-native.ts).
//
//   xxh64(bytes) -> bigint                       XXH64, seed 0, of a Uint8Array, now
//   new Xxh64()  update(bytes) -> this, digest() -> bigint   the same, streamed
//   digestProcessMemory(pid, address, length, bufferBytes) -> { promise, cancel }
//       reads and hashes [address, address + length) of process `pid` on a
//       libuv worker thread (never the event loop); the promise resolves to
//       { xxh64: bigint, bytes, readNs, hashNs } or rejects with an Error
//       carrying errno, code ("EFAULT", "ESRCH", "EPERM", "ECANCELED",
//       "SHORT_READ"), syscall, address (where the failed read started) and
//       bytesRead; cancel() makes it stop before its next piece.
#include "ram_digest_addon.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "napi_errors.h"
#include "ram_digest.h"
#include "xxh64.h"

namespace vnet_tap {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), usage);
  }
  return info[i].As<Napi::Uint8Array>();
}

Napi::Value Xxh64Of(const Napi::CallbackInfo& info) {
  Napi::Uint8Array b = BytesArg(info, 0, "xxh64(bytes: Uint8Array)");
  return Napi::BigInt::New(info.Env(), Xxh64::Hash(b.Data(), b.ElementLength()));
}

class Xxh64Handle : public Napi::ObjectWrap<Xxh64Handle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Xxh64", {
      InstanceMethod<&Xxh64Handle::Update>("update"),
      InstanceMethod<&Xxh64Handle::Digest>("digest"),
    });
  }

  explicit Xxh64Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Xxh64Handle>(info) {}

 private:
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Uint8Array b = BytesArg(info, 0, "Xxh64.update(bytes: Uint8Array)");
    h_.Update(b.Data(), b.ElementLength());
    return info.This();
  }
  Napi::Value Digest(const Napi::CallbackInfo& info) { return Napi::BigInt::New(info.Env(), h_.Digest()); }

  Xxh64 h_;
};

// A whole number in [min, max], or a RangeError naming the argument.
double WholeArg(const Napi::CallbackInfo& info, size_t i, const char* name, double min, double max) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("digestProcessMemory: ") + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), std::string("digestProcessMemory: ") + name + " must be a whole number in [" + std::to_string(static_cast<uint64_t>(min)) + ", " + std::to_string(static_cast<uint64_t>(max)) + "]");
  }
  return v;
}

class DigestWorker : public Napi::AsyncWorker {
 public:
  DigestWorker(Napi::Env env, const RamDigestRequest& req, std::shared_ptr<std::atomic<bool>> cancel)
      : Napi::AsyncWorker(env, "vnet:ram-digest"), req_(req), cancel_(std::move(cancel)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { res_ = DigestProcessRange(req_, *cancel_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (res_.status == RamDigestStatus::kOk) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("xxh64", Napi::BigInt::New(env, res_.xxh64));
      o.Set("bytes", Napi::Number::New(env, static_cast<double>(res_.bytes)));
      o.Set("readNs", Napi::Number::New(env, static_cast<double>(res_.read_ns)));
      o.Set("hashNs", Napi::Number::New(env, static_cast<double>(res_.hash_ns)));
      deferred_.Resolve(o);
      return;
    }
    Napi::Error err = Napi::Error::New(env, "");
    if (res_.status == RamDigestStatus::kShortRead) {
      err = Napi::Error::New(env, std::string(res_.syscall) + ": read nothing and named no error");
      err.Set("errno", Napi::Number::New(env, 0));
      err.Set("code", Napi::String::New(env, "SHORT_READ"));
      err.Set("syscall", Napi::String::New(env, res_.syscall));
    } else if (res_.status == RamDigestStatus::kCancelled) {
      err = SysErrorToJs(env, SysError{ECANCELED, "digestProcessMemory"});
    } else {
      err = SysErrorToJs(env, SysError{res_.err, res_.syscall});
    }
    err.Set("address", Napi::Number::New(env, static_cast<double>(res_.at)));
    err.Set("bytesRead", Napi::Number::New(env, static_cast<double>(res_.bytes)));
    deferred_.Reject(err.Value());
  }

 private:
  RamDigestRequest req_;
  RamDigestResult res_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value DigestProcessMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RamDigestRequest req;
  req.pid = static_cast<pid_t>(WholeArg(info, 0, "pid", 1, 2147483647.0));
  req.address = static_cast<uint64_t>(WholeArg(info, 1, "address", 0, kMaxSafeInteger));
  req.length = static_cast<uint64_t>(WholeArg(info, 2, "length", 0, kMaxSafeInteger - static_cast<double>(req.address)));
  req.buffer_bytes = static_cast<size_t>(WholeArg(info, 3, "bufferBytes", kRamDigestMinBuffer, kRamDigestMaxBuffer));
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto* worker = new DigestWorker(env, req, cancel);
  Napi::Object out = Napi::Object::New(env);
  out.Set("promise", worker->Promise());
  out.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo&) { cancel->store(true, std::memory_order_relaxed); }, "cancel"));
  worker->Queue();
  return out;
}

}  // namespace

void RegisterRamDigest(Napi::Env env, Napi::Object exports) {
  exports.Set("xxh64", Napi::Function::New(env, Xxh64Of, "xxh64"));
  exports.Set("Xxh64", Xxh64Handle::Define(env));
  exports.Set("digestProcessMemory", Napi::Function::New(env, DigestProcessMemory, "digestProcessMemory"));
}

}  // namespace vnet_tap
