// PollPolicy: poll_policy.h on its own for its tests, driven by the caller's
// timestamps; and the { capUs, budgetPercent } options NativeForwarder takes.
//
//   new PollPolicy({ capUs, budgetPercent })   forwarded(in, out, nowNs[, len = 64]),
//       spinUntil(nowNs) -> ns or 0, spun(ns), scheduling(runDelayNs, timeslices), window(in, out) -> ns,
//       denied(), contended() -> refusals
#include "poll_policy_addon.h"

namespace vnet_tap {

PollPolicyOptions PollPolicyOptionsFrom(Napi::Object o) {
  PollPolicyOptions p;
  p.cap_ns = uint64_t{OptU32(o, "capUs", 0)} * 1000;
  p.budget_permille = OptU32(o, "budgetPercent", 25) * 10;
  return p;
}

namespace {

uint64_t Ns(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "PollPolicy: number expected");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 9007199254740991.0)) throw Napi::RangeError::New(info.Env(), "PollPolicy: not a time in ns");
  return static_cast<uint64_t>(v);
}

// poll_policy.h on its own, driven by the caller's timestamps (the policy's tests).
class PollPolicyHandle : public Napi::ObjectWrap<PollPolicyHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PollPolicy", {
      InstanceMethod<&PollPolicyHandle::Forwarded>("forwarded"),
      InstanceMethod<&PollPolicyHandle::SpinUntil>("spinUntil"),
      InstanceMethod<&PollPolicyHandle::Spun>("spun"),
      InstanceMethod<&PollPolicyHandle::Window>("window"),
      InstanceMethod<&PollPolicyHandle::Denied>("denied"),
      InstanceMethod<&PollPolicyHandle::Scheduling>("scheduling"),
      InstanceMethod<&PollPolicyHandle::Contended>("contended"),
    });
  }

  explicit PollPolicyHandle(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<PollPolicyHandle>(info), policy_(PollPolicyOptionsFrom(info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env()))) {}

 private:
  void Forwarded(const Napi::CallbackInfo& info) {
    policy_.Forwarded(static_cast<uint32_t>(Ns(info, 0)), static_cast<uint32_t>(Ns(info, 1)), Ns(info, 2), info.Length() > 3 ? Ns(info, 3) : 64);
  }
  Napi::Value SpinUntil(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(policy_.SpinUntil(Ns(info, 0)))); }
  void Spun(const Napi::CallbackInfo& info) { policy_.Spun(Ns(info, 0)); }
  void Scheduling(const Napi::CallbackInfo& info) { policy_.Scheduling(Ns(info, 0), Ns(info, 1)); }
  Napi::Value Window(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(policy_.Window(static_cast<uint32_t>(Ns(info, 0)), static_cast<uint32_t>(Ns(info, 1)))));
  }
  Napi::Value Denied(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(policy_.denied())); }
  Napi::Value Contended(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(policy_.contended_refusals())); }

  PollPolicy policy_;
};

}  // namespace

void RegisterPollPolicy(Napi::Env env, Napi::Object exports) {
  exports.Set("PollPolicy", PollPolicyHandle::Define(env));
}

}  // namespace vnet_tap
