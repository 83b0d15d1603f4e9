// The poll policy's options from JS, and PollPolicy (poll_policy_addon.cc) in the addon's exports.
#pragma once

#include <napi.h>

#include "poll_policy.h"

namespace vnet_tap {

// An options object's unsigned field, or `dflt` when it is not a number (the JS side checks ranges).
inline uint32_t OptU32(Napi::Object o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : dflt;
}

// { capUs, budgetPercent } (native-forwarder.ts checks the ranges).
PollPolicyOptions PollPolicyOptionsFrom(Napi::Object o);

void RegisterPollPolicy(Napi::Env env, Napi::Object exports);

}  // namespace vnet_tap
