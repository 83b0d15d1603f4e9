// errno → JS errors, shared by the addon's classes (polled_fd.h, tap_addon.cc, packet_addon.cc).
#pragma once

#include <uv.h>

#include <cstring>
#include <string>

#include <napi.h>

#include "tap_fd.h"

namespace vnet_tap {

// "EBADFD" for errno 77: glibc names every errno (libuv does not know EBADFD).
inline const char* ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  return uv_err_name(-err);
}

// A JS Error carrying errno, its libuv-style code ("EBADFD") and the failed call.
inline Napi::Error SysErrorToJs(Napi::Env env, const SysError& e) {
  std::string msg = std::string(e.syscall) + ": " + std::strerror(e.err);
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("code", Napi::String::New(env, ErrnoName(e.err)));
  err.Set("syscall", Napi::String::New(env, e.syscall));
  return err;
}

}  // namespace vnet_tap
