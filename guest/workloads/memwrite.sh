#!/bin/sh
# memwrite: a memory writer with a known dirty rate. It fills a 32 MiB buffer
# file in tmpfs (tmpfs pages are guest RAM) with random bytes, then rewrites
# it in 1 MiB chunks, round-robin, with fresh random bytes: about 4 MiB
# (1024 pages) per 0.25 s of guest time, i.e. up to ~4096 pages/s when the
# emulated CPU keeps up (under TCG it often does not: the measured rate is
# what the trace reports). Every rewrite makes the pages' content new, so
# neither deduplication nor deltas help much: the worst case for pre-copy.
# Half of every chunk is random, the other half a copy of a fixed 512 KiB
# pattern, so the trace also holds duplicate pages a migration could send once.
MB=32
dd if=/dev/urandom of=/work/pattern bs=4096 count=128 2>/dev/null
dd if=/dev/urandom of=/work/buf bs=1048576 count="$MB" 2>/dev/null
# The marker comes after the initial fill, so snapshots see only the rewriting.
echo "VNET_WORKLOAD_START memwrite"
i=0
while :; do
  n=0
  while [ "$n" -lt 4 ]; do
    dd if=/dev/urandom of=/work/buf bs=524288 count=1 seek=$((i * 2)) conv=notrunc 2>/dev/null
    dd if=/work/pattern of=/work/buf bs=524288 count=1 seek=$((i * 2 + 1)) conv=notrunc 2>/dev/null
    i=$(((i + 1) % MB))
    n=$((n + 1))
  done
  usleep 250000
done
