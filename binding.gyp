# The TAP device addon (Linux only): N-API through node-addon-api, C++17.
# `npm ci` builds it through the package's `install` script (node-gyp rebuild);
# the result is build/Release/vnet_tap.node, loaded by src/dataplane/tap-device.ts
# (TapHandle), src/dataplane/native-forwarder.ts (NativeForwarder, its own thread)
# src/dataplane/packet-socket.ts (PacketHandle: the packet-socket port),
# src/host/ram-digest-native.ts (xxh64, a process's memory digested: QEMU's RAM) and
# src/host/qemu-unread.ts (takeProcessFd: what a stopped QEMU left on its TAP).
{
  "targets": [
    {
      "target_name": "vnet_tap",
      "sources": ["native/tap/tap_fd.cc", "native/tap/tap_addon.cc", "native/tap/forwarder.cc", "native/tap/forwarder_thread.cc", "native/tap/forwarder_io.cc", "native/tap/forwarder_addon.cc", "native/tap/poll_policy_addon.cc", "native/tap/records.cc", "native/tap/process_fd_addon.cc", "native/tap/xxh64.cc", "native/tap/ram_digest.cc", "native/tap/ram_digest_addon.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20", "-fno-exceptions"],
      "ldflags": ["-pthread"],
      "conditions": [["OS=='linux'", {"sources": ["native/tap/packet_socket.cc", "native/tap/packet_addon.cc"]}]]
    }
  ]
}
