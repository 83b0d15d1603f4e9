// The native link record layer (docs/wire-protocol.md, "Native records"):
// AES-256-GCM records on a TLS link's TCP socket once both ends switched
// (src/dataplane/tls-switch.ts). One RecordLayer per link, two directions,
// each with its own key and IV, so no (key, nonce) pair is ever used twice:
//
//   record   type (u8) · length L (u24 BE: ciphertext + 16-byte tag,
//            17..kMaxPlain+16) · ciphertext · tag; the 4 header bytes are the
//            AEAD's associated data. Type 0 is data; vnet-records/1 knows no
//            other (its header reads as one u32 length).
//   nonce    the direction's 12-byte IV XOR (4 zero bytes · u64 BE record counter).
//   rekey    vnet-records/2: each direction has a traffic secret, its key and IV
//            derived from it (HKDF-Expand-Label, SHA-256, labels "vnet key",
//            "vnet iv"). When the sender's counters reach the rekey threshold it
//            seals a KEY_UPDATE (type 1, plaintext = the next generation, u64 BE)
//            under its current key, then the next secret ("vnet traffic upd")
//            replaces the current one (which is erased), the key and IV follow,
//            and the counters restart at 0. The receiver does the same on
//            opening the KEY_UPDATE. No round trip; the directions are independent.
//   age      vnet-records/2 with rekey_age_ms > 0: the sender also updates its key
//            once it has sealed under it for that long (CLOCK_MONOTONIC,
//            tx_started_ns). JS hands the key's age over, not a time stamp
//            (src/dataplane/record-socket.ts): its clock may not be this one.
//   limits   a direction seals or opens at most max_records records and
//            max_bytes plaintext bytes under one key (the backstop behind the
//            rekeying); then the link fails (kRecordErrLimit) and is redialled.
//   errors   distinct errnos, which src/dataplane/record-layer.ts maps to its
//            codes: kRecordErrLength (a header outside the above),
//            kRecordErrAuth (a tag that does not verify), kRecordErrTruncated
//            (the stream ended inside a record), kRecordErrLimit, and
//            kRecordErrKeyUpdate (a KEY_UPDATE of the wrong size or generation).
//            Nothing of a record that does not verify is used.
//
// The TypeScript twin (src/dataplane/record-layer.ts, record-keys.ts) runs the
// same layer on the event loop before the forwarder attaches and after it lets
// go; keys, generation and counters move between the two with the endpoint
// (RecordState).
#pragma once

#include <errno.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace vnet_tap {

constexpr size_t kRecordHeader = 4;
constexpr size_t kRecordTag = 16;
constexpr size_t kRecordMaxPlain = 128 * 1024;
constexpr size_t kRecordSecret = 32;
constexpr uint8_t kRecordData = 0;
constexpr uint8_t kRecordKeyUpdate = 1;
constexpr size_t kKeyUpdatePlain = 8;

// How a records link fails (the errno Fail reports; never one a TCP socket gives).
constexpr int kRecordErrLength = ERANGE;
constexpr int kRecordErrAuth = EBADMSG;
constexpr int kRecordErrTruncated = ENODATA;
constexpr int kRecordErrLimit = EOVERFLOW;
constexpr int kRecordErrKeyUpdate = EKEYREJECTED;

struct RecordDirectionState {
  uint8_t key[32];
  uint8_t iv[12];
  uint8_t secret[kRecordSecret];  // vnet-records/2: this generation's traffic secret
  uint64_t generation = 0;        // key updates done so far
  uint64_t seq = 0;               // records done under this key (the next record's counter)
  uint64_t bytes = 0;             // plaintext bytes done under this key
};

struct RecordState {
  RecordDirectionState tx, rx;
  uint64_t max_records = 0, max_bytes = 0;
  bool rekey = false;  // vnet-records/2: KEY_UPDATE records, secrets
  uint64_t rekey_records = 0, rekey_bytes = 0;  // the sender updates its key once either is reached
  uint64_t rekey_age_ms = 0;   // ... or once its key is this old (0: no age threshold)
  // MonotonicNs() when the send key's generation began; signed: a key handed
  // over older than this clock's origin (the machine's uptime; JS's clock is
  // not this one) began before 0, and its age still reads whole.
  int64_t tx_started_ns = 0;
  // How long the send key has been in use at `now` (MonotonicNs()).
  uint64_t TxAgeNs(uint64_t now) const {
    const int64_t age = static_cast<int64_t>(now) - tx_started_ns;
    return age > 0 ? static_cast<uint64_t>(age) : 0;
  }
  void Wipe();
};


// What a records link's keys have done, without the keys (the admin interface's view).
struct RecordKeyInfo {
  uint64_t tx_generation, tx_records, tx_bytes, tx_age_ms;
  uint64_t rx_generation, rx_records, rx_bytes;
};

class RecordLayer {
 public:
  explicit RecordLayer(const RecordState& state);
  ~RecordLayer();
  RecordLayer(const RecordLayer&) = delete;
  RecordLayer& operator=(const RecordLayer&) = delete;

  bool ok() const { return ok_; }
  // Seals the iovecs' bytes (split into records of at most kRecordMaxPlain, each
  // preceded by a KEY_UPDATE when the threshold is reached) and appends the records
  // to out. 0, or kRecordErrLimit at the limit, EIO when OpenSSL fails.
  int Seal(const struct iovec* iov, int iovcnt, std::vector<uint8_t>* out);
  // Opens the record at p (n bytes available) into dst (room bytes). Returns 1 and sets
  // *plain and *used when one was opened (a KEY_UPDATE: *plain = 0, the receive key
  // updated); 0 when more bytes are needed (*used = 0) or dst has no room for it
  // (*used = the record's size); or -kRecordErr* / -EIO.
  int Open(const uint8_t* p, size_t n, uint8_t* dst, size_t room, size_t* plain, size_t* used);
  // The state (keys included) to hand back to JS.
  const RecordState& state() const { return st_; }
  RecordKeyInfo info() const;

 private:
  int SealOne(uint8_t type, const struct iovec* iov, int iovcnt, size_t skip, size_t len, std::vector<uint8_t>* out);
  int SealKeyUpdate(std::vector<uint8_t>* out);
  bool KeyTooOld() const;
  int OpenOne(const uint8_t* p, size_t len, uint8_t* dst);
  int OpenKeyUpdate(const uint8_t* p);
  bool Used(const RecordDirectionState& d, size_t len) const;

  RecordState st_;
  EVP_CIPHER_CTX* tx_ = nullptr;
  EVP_CIPHER_CTX* rx_ = nullptr;
  bool ok_ = false;
};

}  // namespace vnet_tap
