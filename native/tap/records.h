// The native link record layer (docs/wire-protocol.md, "Native records"):
// AES-256-GCM records on a TLS link's TCP socket once both ends switched
// (src/dataplane/tls-switch.ts). One RecordLayer per link, two directions,
// each with its own key and IV from the TLS exporter, so no (key, nonce)
// pair is ever used twice:
//
//   record   u32 BE length L (ciphertext + 16-byte tag, 17..kMaxPlain+16) ·
//            ciphertext · tag; the 4 length bytes are the AEAD's associated data.
//   nonce    the direction's 12-byte IV XOR (4 zero bytes · u64 BE record counter).
//   limits   a direction seals or opens at most max_records records and
//            max_bytes plaintext bytes; at the limit the link fails (EOVERFLOW)
//            and is redialled with fresh keys. A bad length or tag fails it
//            with EBADMSG. Nothing of a record that does not verify is used.
//
// The TypeScript twin (src/dataplane/record-layer.ts) runs the same layer on
// the event loop before the forwarder attaches and after it lets go; the
// counters move between the two with the endpoint (RecordState).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace vnet_tap {

constexpr size_t kRecordHeader = 4;
constexpr size_t kRecordTag = 16;
constexpr size_t kRecordMaxPlain = 128 * 1024;

struct RecordDirectionState {
  uint8_t key[32];
  uint8_t iv[12];
  uint64_t seq = 0;    // records done so far (the next record's counter)
  uint64_t bytes = 0;  // plaintext bytes done so far
};

struct RecordState {
  RecordDirectionState tx, rx;
  uint64_t max_records = 0, max_bytes = 0;
  void Wipe() {
    for (RecordDirectionState* d : {&tx, &rx}) {
      volatile uint8_t* k = d->key;
      for (size_t i = 0; i < sizeof d->key; i++) k[i] = 0;
    }
  }
};

class RecordLayer {
 public:
  explicit RecordLayer(const RecordState& state);
  ~RecordLayer();
  RecordLayer(const RecordLayer&) = delete;
  RecordLayer& operator=(const RecordLayer&) = delete;

  bool ok() const { return ok_; }
  // Seals the iovecs' bytes (split into records of at most kRecordMaxPlain) and appends
  // the records to out. 0, or EOVERFLOW at the limit, EIO when OpenSSL fails.
  int Seal(const struct iovec* iov, int iovcnt, std::vector<uint8_t>* out);
  // Opens the record at p (n bytes available) into dst (room bytes). Returns 1 and sets
  // *plain and *used when one was opened; 0 when more bytes are needed (*used = 0) or
  // dst has no room for it (*used = the record's size); -EBADMSG / -EOVERFLOW / -EIO.
  int Open(const uint8_t* p, size_t n, uint8_t* dst, size_t room, size_t* plain, size_t* used);
  // The counters (keys included) to hand back to JS.
  const RecordState& state() const { return st_; }

 private:
  void Nonce(const RecordDirectionState& d, uint8_t out[12]) const;
  int SealOne(const struct iovec* iov, int iovcnt, size_t skip, size_t len, std::vector<uint8_t>* out);

  RecordState st_;
  EVP_CIPHER_CTX* tx_ = nullptr;
  EVP_CIPHER_CTX* rx_ = nullptr;
  bool ok_ = false;
};

}  // namespace vnet_tap
