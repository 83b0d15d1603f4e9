// takeProcessFd (process_fd_addon.cc) on the addon's exports.
#pragma once

#include <napi.h>

namespace vnet_tap {

void RegisterProcessFd(Napi::Env env, Napi::Object exports);

}  // namespace vnet_tap
