// PolledFd<Derived>: what the addon's fd-backed JS objects share (TapHandle in
// tap_addon.cc, PacketHandle in packet_addon.cc): a non-blocking fd read by a
// uv_poll_t on the main loop, the onBatch/onError callbacks JS passes to
// start(), one failure report, and the teardown order.
//
//   start    StartPolling(info, ...): callbacks and scratch first (everything
//            that can fail), the poll handle last; Ref() while polling, so the
//            loop may call back into the object
//   readable OnPoll → Derived::OnReadable(status) (status < 0: POLLERR); a JS
//            callback that throws surfaces as an uncaught exception
//   fail     Fail(errno, syscall): stops polling first, so nothing else
//            arrives, then calls onError(errno, code, syscall) once
//   close    Shutdown(): stops polling, closes the fd, frees the scratch
//
// At environment teardown an object can be finalized while still polling; its
// reference is being torn down then, so the destructor shuts down without
// Unref (Shutdown(false)).
#pragma once

#include <unistd.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include <napi.h>

#include "napi_errors.h"

namespace vnet_tap {

template <typename Derived>
class PolledFd : public Napi::ObjectWrap<Derived> {
 protected:
  explicit PolledFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}

  // start(onBatch, onError) for the class `what`, with `scratch_bytes` of scratch; once only.
  void StartPolling(const Napi::CallbackInfo& info, const char* what, const char* resource, size_t scratch_bytes) {
    Napi::Env env = info.Env();
    if (fd_ < 0) throw Napi::Error::New(env, std::string(what) + ": closed");
    if (poll_ != nullptr || failed_) throw Napi::Error::New(env, std::string(what) + ": already started");
    if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) throw Napi::TypeError::New(env, std::string(what) + ".start(onBatch, onError)");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, std::string(what) + ": no event loop");
    scratch_.reset(new uint8_t[scratch_bytes]);
    on_batch_ = Napi::Persistent(info[0].As<Napi::Function>());
    on_error_ = Napi::Persistent(info[1].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, resource);
    env_ = env;
    auto poll = std::make_unique<uv_poll_t>();
    int rc = uv_poll_init(loop, poll.get(), fd_);
    if (rc == 0) {
      poll->data = this;
      rc = uv_poll_start(poll.get(), UV_READABLE, &PolledFd::OnPoll);
      if (rc != 0) uv_close(reinterpret_cast<uv_handle_t*>(poll.release()), &PolledFd::FreePoll);
    }
    if (rc != 0) {
      on_batch_.Reset();
      on_error_.Reset();
      async_.reset();
      throw SysErrorToJs(env, SysError{-rc, "uv_poll_start"});
    }
    poll_ = poll.release();
    this->Ref();
  }

  // Stops polling (if polling) and drops the callbacks; idempotent.
  void StopPolling(bool unref = true) {
    if (poll_ == nullptr) return;
    // uv_close removes the fd from epoll synchronously; the handle memory is freed later.
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), &PolledFd::FreePoll);
    poll_ = nullptr;
    on_batch_.Reset();
    on_error_.Reset();
    async_.reset();
    if (unref) this->Unref();
  }

  void Shutdown(bool unref = true) {
    StopPolling(unref);
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    scratch_.reset();
  }

  // Reports a failure once: stop polling first, so nothing else arrives.
  void Fail(int err, const char* syscall) {
    if (failed_ || on_error_.IsEmpty()) return;
    failed_ = true;
    Napi::Env env = env_;
    Napi::FunctionReference cb = std::move(on_error_);
    std::unique_ptr<Napi::AsyncContext> ctx = std::move(async_);
    Napi::Object self = this->Value();
    StopPolling();
    cb.MakeCallback(self, {Napi::Number::New(env, err), Napi::String::New(env, ErrnoName(err)), Napi::String::New(env, syscall)}, *ctx);
  }

  // Hands one batch to onBatch(args...) (a no-op once the callbacks are gone).
  void EmitBatch(const std::initializer_list<napi_value>& args) {
    if (!on_batch_.IsEmpty()) on_batch_.MakeCallback(this->Value(), args, *async_);
  }

  static bool IsBytes(const Napi::Value& v) {
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<PolledFd*>(handle->data);
    if (self == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    Napi::Object keep_alive = self->Value();  // JS may close() this object from inside the callback
    (void)keep_alive;
    try {
      static_cast<Derived*>(self)->OnReadable(status);
    } catch (const Napi::Error& e) {
      // A JS callback threw: surface it like any uncaught exception.
      napi_fatal_exception(env, e.Value());
    } catch (const std::exception& e) {
      napi_fatal_exception(env, Napi::Error::New(env, e.what()).Value());
    }
  }

  int fd_ = -1;
  bool failed_ = false;
  uv_poll_t* poll_ = nullptr;
  std::unique_ptr<uint8_t[]> scratch_;
  Napi::Env env_ = Napi::Env(nullptr);
  Napi::FunctionReference on_batch_;
  Napi::FunctionReference on_error_;
  std::unique_ptr<Napi::AsyncContext> async_;

 private:
  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }
};

}  // namespace vnet_tap
