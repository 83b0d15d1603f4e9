// The native link record layer (records.h says what it is).
#include "records.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "monotonic.h"

#include <algorithm>
#include <cstring>

namespace vnet_tap {

namespace {

// HKDF-Expand-Label (RFC 8446 §7.1 with "vnet " for "tls13 ", empty context),
// SHA-256, len <= 32: one HMAC block, T(1) = HMAC(secret, HkdfLabel · 0x01).
bool ExpandLabel(const uint8_t secret[kRecordSecret], const char* label, uint8_t* out, size_t len) {
  const char prefix[] = "vnet ";
  const size_t l = sizeof prefix - 1 + std::strlen(label);
  uint8_t info[2 + 1 + 255 + 1 + 1];
  size_t k = 0;
  info[k++] = static_cast<uint8_t>(len >> 8);
  info[k++] = static_cast<uint8_t>(len);
  info[k++] = static_cast<uint8_t>(l);
  std::memcpy(info + k, prefix, sizeof prefix - 1);
  k += sizeof prefix - 1;
  std::memcpy(info + k, label, l - (sizeof prefix - 1));
  k += l - (sizeof prefix - 1);
  info[k++] = 0;  // context: empty
  info[k++] = 1;  // HKDF-Expand's block counter
  uint8_t block[32];
  size_t got = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret, kRecordSecret, info, k, block, sizeof block, &got) == nullptr || got != sizeof block) return false;
  std::memcpy(out, block, len);
  OPENSSL_cleanse(block, sizeof block);
  return true;
}

// The next generation of a direction: secret' = ExpandLabel(secret, "traffic upd"), its
// key and IV, counters from 0. The old secret and key are overwritten.
bool NextGeneration(RecordDirectionState& d) {
  uint8_t next[kRecordSecret];
  if (!ExpandLabel(d.secret, "traffic upd", next, sizeof next)) return false;
  std::memcpy(d.secret, next, sizeof next);
  OPENSSL_cleanse(next, sizeof next);
  if (!ExpandLabel(d.secret, "key", d.key, sizeof d.key) || !ExpandLabel(d.secret, "iv", d.iv, sizeof d.iv)) return false;
  d.generation++;
  d.seq = 0;
  d.bytes = 0;
  return true;
}

void Nonce(const RecordDirectionState& d, uint8_t out[12]) {
  std::memcpy(out, d.iv, 12);
  for (int i = 0; i < 8; i++) out[4 + i] ^= static_cast<uint8_t>(d.seq >> (56 - 8 * i));
}

}  // namespace

RecordKeyInfo RecordLayer::info() const {
  const uint64_t now = MonotonicNs();
  return {st_.tx.generation, st_.tx.seq, st_.tx.bytes, st_.TxAgeNs(now) / 1000000,
          st_.rx.generation, st_.rx.seq, st_.rx.bytes};
}

void RecordState::Wipe() {
  for (RecordDirectionState* d : {&tx, &rx}) {
    OPENSSL_cleanse(d->key, sizeof d->key);
    OPENSSL_cleanse(d->iv, sizeof d->iv);
    OPENSSL_cleanse(d->secret, sizeof d->secret);
  }
}

RecordLayer::RecordLayer(const RecordState& state) : st_(state) {
  tx_ = EVP_CIPHER_CTX_new();
  rx_ = EVP_CIPHER_CTX_new();
  ok_ = tx_ != nullptr && rx_ != nullptr &&
        EVP_EncryptInit_ex(tx_, EVP_aes_256_gcm(), nullptr, st_.tx.key, nullptr) == 1 &&
        EVP_DecryptInit_ex(rx_, EVP_aes_256_gcm(), nullptr, st_.rx.key, nullptr) == 1;
}

RecordLayer::~RecordLayer() {
  st_.Wipe();
  if (tx_ != nullptr) EVP_CIPHER_CTX_free(tx_);
  if (rx_ != nullptr) EVP_CIPHER_CTX_free(rx_);
}

bool RecordLayer::Used(const RecordDirectionState& d, size_t len) const {
  return d.seq >= st_.max_records || len > st_.max_bytes - std::min(st_.max_bytes, d.bytes);
}

int RecordLayer::Seal(const struct iovec* iov, int iovcnt, std::vector<uint8_t>* out) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  for (size_t done = 0; done < total;) {
    size_t len = std::min(total - done, kRecordMaxPlain);
    int err = 0;
    if (st_.rekey && (st_.tx.seq >= st_.rekey_records || st_.tx.bytes >= st_.rekey_bytes || KeyTooOld())) err = SealKeyUpdate(out);
    if (err == 0) err = SealOne(kRecordData, iov, iovcnt, done, len, out);
    if (err != 0) return err;
    done += len;
  }
  return 0;
}

// KEY_UPDATE under the current key, then the next generation seals.
int RecordLayer::SealKeyUpdate(std::vector<uint8_t>* out) {
  uint8_t next[kKeyUpdatePlain];
  for (size_t i = 0; i < kKeyUpdatePlain; i++) next[i] = static_cast<uint8_t>((st_.tx.generation + 1) >> (56 - 8 * i));
  struct iovec one{next, sizeof next};
  int err = SealOne(kRecordKeyUpdate, &one, 1, 0, sizeof next, out);
  if (err != 0) return err;
  if (!NextGeneration(st_.tx) || EVP_EncryptInit_ex(tx_, nullptr, nullptr, st_.tx.key, nullptr) != 1) {
    ok_ = false;
    return EIO;
  }
  st_.tx_started_ns = static_cast<int64_t>(MonotonicNs());
  return 0;
}

bool RecordLayer::KeyTooOld() const {
  return st_.rekey_age_ms > 0 && st_.TxAgeNs(MonotonicNs()) >= st_.rekey_age_ms * 1000000ull;
}

// Seals bytes [skip, skip + len) of the iovecs as one record of `type`.
int RecordLayer::SealOne(uint8_t type, const struct iovec* iov, int iovcnt, size_t skip, size_t len, std::vector<uint8_t>* out) {
  RecordDirectionState& d = st_.tx;
  if (!ok_) return EIO;
  if (Used(d, len)) return kRecordErrLimit;
  const size_t body = len + kRecordTag;
  const size_t at = out->size();
  out->resize(at + kRecordHeader + body);
  uint8_t* rec = out->data() + at;
  rec[0] = type;
  rec[1] = static_cast<uint8_t>(body >> 16);
  rec[2] = static_cast<uint8_t>(body >> 8);
  rec[3] = static_cast<uint8_t>(body);
  uint8_t nonce[12];
  Nonce(d, nonce);
  int n = 0;
  if (EVP_EncryptInit_ex(tx_, nullptr, nullptr, nullptr, nonce) != 1 || EVP_EncryptUpdate(tx_, nullptr, &n, rec, kRecordHeader) != 1) return EIO;
  uint8_t* w = rec + kRecordHeader;
  size_t left = len;
  for (int i = 0; i < iovcnt && left > 0; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    size_t take = std::min(l - skip, left);
    if (EVP_EncryptUpdate(tx_, w, &n, static_cast<const uint8_t*>(iov[i].iov_base) + skip, static_cast<int>(take)) != 1) return EIO;
    w += n;
    left -= take;
    skip = 0;
  }
  if (EVP_EncryptFinal_ex(tx_, w, &n) != 1) return EIO;
  w += n;
  if (EVP_CIPHER_CTX_ctrl(tx_, EVP_CTRL_GCM_GET_TAG, kRecordTag, w) != 1) return EIO;
  d.seq++;
  d.bytes += len;
  return 0;
}

int RecordLayer::Open(const uint8_t* p, size_t n, uint8_t* dst, size_t room, size_t* plain, size_t* used) {
  *used = 0;
  *plain = 0;
  if (n < kRecordHeader) return 0;
  const uint8_t type = p[0];
  const size_t body = (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  const bool update = st_.rekey && type == kRecordKeyUpdate;
  if (update && body != kKeyUpdatePlain + kRecordTag) return -kRecordErrKeyUpdate;
  if ((type != kRecordData && !update) || body <= kRecordTag || body > kRecordMaxPlain + kRecordTag) return -kRecordErrLength;
  if (n < kRecordHeader + body) return 0;
  const size_t len = body - kRecordTag;
  if (update) {
    int r = OpenKeyUpdate(p);
    if (r == 1) *used = kRecordHeader + body;
    return r;
  }
  if (len > room) {
    *used = kRecordHeader + body;
    return 0;
  }
  int err = OpenOne(p, len, dst);
  if (err != 0) return err;
  *plain = len;
  *used = kRecordHeader + body;
  return 1;
}

// Opens the whole record at p (plaintext len) into dst under the current receive key
// and counts it. 0, or -kRecordErr* / -EIO (nothing of it is to be used then).
int RecordLayer::OpenOne(const uint8_t* p, size_t len, uint8_t* dst) {
  RecordDirectionState& d = st_.rx;
  if (!ok_) return -EIO;
  if (Used(d, len)) return -kRecordErrLimit;
  uint8_t nonce[12];
  Nonce(d, nonce);
  int k = 0, f = 0;
  if (EVP_DecryptInit_ex(rx_, nullptr, nullptr, nullptr, nonce) != 1 || EVP_DecryptUpdate(rx_, nullptr, &k, p, kRecordHeader) != 1) return -EIO;
  if (EVP_DecryptUpdate(rx_, dst, &k, p + kRecordHeader, static_cast<int>(len)) != 1) return -kRecordErrAuth;
  uint8_t tag[kRecordTag];
  std::memcpy(tag, p + kRecordHeader + len, kRecordTag);
  if (EVP_CIPHER_CTX_ctrl(rx_, EVP_CTRL_GCM_SET_TAG, kRecordTag, tag) != 1) return -EIO;
  if (EVP_DecryptFinal_ex(rx_, dst + k, &f) != 1) return -kRecordErrAuth;  // the tag does not verify
  d.seq++;
  d.bytes += len;
  return 0;
}

// A whole KEY_UPDATE record at p: verified under the current receive key, it must
// name the next generation; then the receive key moves on. 1, or -kRecordErr* / -EIO.
int RecordLayer::OpenKeyUpdate(const uint8_t* p) {
  uint8_t got[kKeyUpdatePlain + 16];
  int err = OpenOne(p, kKeyUpdatePlain, got);
  if (err != 0) return err;
  RecordDirectionState& d = st_.rx;
  uint64_t generation = 0;
  for (size_t i = 0; i < kKeyUpdatePlain; i++) generation = (generation << 8) | got[i];
  if (generation != d.generation + 1) return -kRecordErrKeyUpdate;
  if (!NextGeneration(d) || EVP_DecryptInit_ex(rx_, nullptr, nullptr, d.key, nullptr) != 1) {
    ok_ = false;
    return -EIO;
  }
  return 1;
}

}  // namespace vnet_tap
