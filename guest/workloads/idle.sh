#!/bin/sh
# idle: the workload does nothing; what changes in RAM between snapshots is
# the kernel's own background activity (timers, RCU, the page cache of the
# initramfs, the shell sleeping). The floor every other trace stands on.
echo "VNET_WORKLOAD_START idle"
while :; do sleep 1; done
