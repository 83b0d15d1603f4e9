// Adds NativeForwarder (forwarder_addon.cc) to the addon's exports.
#pragma once

#include <napi.h>

namespace vnet_tap {

void RegisterForwarder(Napi::Env env, Napi::Object exports);

}  // namespace vnet_tap
