// The native link record layer (records.h says what it is).
#include "records.h"

#include <errno.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace vnet_tap {

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

void RecordLayer::Nonce(const RecordDirectionState& d, uint8_t out[12]) const {
  std::memcpy(out, d.iv, 12);
  for (int i = 0; i < 8; i++) out[4 + i] ^= static_cast<uint8_t>(d.seq >> (56 - 8 * i));
}

int RecordLayer::Seal(const struct iovec* iov, int iovcnt, std::vector<uint8_t>* out) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  for (size_t done = 0; done < total;) {
    size_t len = std::min(total - done, kRecordMaxPlain);
    int err = SealOne(iov, iovcnt, done, len, out);
    if (err != 0) return err;
    done += len;
  }
  return 0;
}

// Seals bytes [skip, skip + len) of the iovecs as one record.
int RecordLayer::SealOne(const struct iovec* iov, int iovcnt, size_t skip, size_t len, std::vector<uint8_t>* out) {
  RecordDirectionState& d = st_.tx;
  if (!ok_) return EIO;
  if (d.seq >= st_.max_records || len > st_.max_bytes - std::min(st_.max_bytes, d.bytes)) return EOVERFLOW;
  const size_t body = len + kRecordTag;
  const size_t at = out->size();
  out->resize(at + kRecordHeader + body);
  uint8_t* rec = out->data() + at;
  rec[0] = static_cast<uint8_t>(body >> 24);
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
  const size_t body = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  if (body <= kRecordTag || body > kRecordMaxPlain + kRecordTag) return -EBADMSG;
  if (n < kRecordHeader + body) return 0;
  const size_t len = body - kRecordTag;
  if (len > room) {
    *used = kRecordHeader + body;
    return 0;
  }
  RecordDirectionState& d = st_.rx;
  if (!ok_) return -EIO;
  if (d.seq >= st_.max_records || len > st_.max_bytes - std::min(st_.max_bytes, d.bytes)) return -EOVERFLOW;
  uint8_t nonce[12];
  Nonce(d, nonce);
  int k = 0, f = 0;
  if (EVP_DecryptInit_ex(rx_, nullptr, nullptr, nullptr, nonce) != 1 || EVP_DecryptUpdate(rx_, nullptr, &k, p, kRecordHeader) != 1) return -EIO;
  if (EVP_DecryptUpdate(rx_, dst, &k, p + kRecordHeader, static_cast<int>(len)) != 1) return -EBADMSG;
  uint8_t tag[kRecordTag];
  std::memcpy(tag, p + kRecordHeader + len, kRecordTag);
  if (EVP_CIPHER_CTX_ctrl(rx_, EVP_CTRL_GCM_SET_TAG, kRecordTag, tag) != 1) return -EIO;
  if (EVP_DecryptFinal_ex(rx_, dst + k, &f) != 1) return -EBADMSG;  // the tag does not verify: nothing of it is used
  d.seq++;
  d.bytes += len;
  *plain = len;
  *used = kRecordHeader + body;
  return 1;
}

}  // namespace vnet_tap
