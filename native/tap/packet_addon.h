// The packet-socket port's N-API class (packet_addon.cc), registered on the
// vnet_tap module's exports as `PacketHandle`.
#pragma once

#include <napi.h>

namespace vnet_tap {

void RegisterPacket(Napi::Env env, Napi::Object exports);

}  // namespace vnet_tap
