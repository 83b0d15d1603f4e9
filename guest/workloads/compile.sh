#!/bin/sh
# compile: a "build-like" mix over files in tmpfs, busybox tools only. Each
# round generates a few source-like text files (seq/awk, ~200 KiB each, with
# the round number in them so content differs round to round), then for each
# one: gzip and gunzip it (compress/decompress working buffers), sort it
# (a large anonymous heap), md5sum it (read-only pass), and writes an "object"
# file (sorted | gzip). Objects of older rounds are deleted, so the working set
# in tmpfs stays at a few MiB while the page cache and heap churn — a
# read-mostly workload with moderate dirtying, like make running a compiler.
echo "VNET_WORKLOAD_START compile"
mkdir -p /work/src /work/obj
round=0
while :; do
  round=$((round + 1))
  for f in a b c d; do
    seq 1 12000 | awk -v r="$round" -v f="$f" '{ printf "int %s_%d_%d(int x) { return x * %d + %d; }\n", f, r, $1, $1 % 97, r }' > "/work/src/$f.c"
  done
  for f in a b c d; do
    gzip -c "/work/src/$f.c" > "/work/src/$f.c.gz"
    gunzip -c "/work/src/$f.c.gz" > /dev/null
    sort -t_ -k3 -n "/work/src/$f.c" | gzip -1 > "/work/obj/$f.$round.o"
    md5sum "/work/src/$f.c" "/work/obj/$f.$round.o" > "/work/obj/$f.$round.sum"
  done
  rm -f /work/obj/*."$((round - 2))".o /work/obj/*."$((round - 2))".sum
done
