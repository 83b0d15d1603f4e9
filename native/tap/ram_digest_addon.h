// xxh64, Xxh64 and digestProcessMemory (ram_digest_addon.cc) on the addon's exports.
#pragma once

#include <napi.h>

namespace vnet_tap {

void RegisterRamDigest(Napi::Env env, Napi::Object exports);

}  // namespace vnet_tap
