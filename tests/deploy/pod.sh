#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run a command the way the ephport DaemonSet's container runs it, on this machine and
# without Kubernetes: what tests/deploy/test_pod.py uses to check that the manifest's
# privileges are enough, and which of them are needed.
#
#   tests/deploy/pod.sh NETNS POD_CGROUP CGROUP2_MOUNT WORKDIR CAPS COMMAND...
#
# Start it in the pod's network namespace (nsenter --net=/run/netns/NETNS). It moves
# itself into POD_CGROUP (a directory of the cgroup2 hierarchy mounted at CGROUP2_MOUNT)
# and takes a cgroup namespace rooted there, as the runtime does for a pod; then, in a
# mount namespace of its own:
#   - a fresh read-only sysfs over /sys, as a container that is not privileged gets;
#   - the runtime's cgroup2 mount at /sys/fs/cgroup (the pod's own subtree) with the
#     hostPath volume of the node's whole tree over it, read-only;
#   - the hostPath volumes /sys/fs/bpf and /sys/kernel/tracing (read-only);
#   - /run/ephport writable, and the root filesystem read-only;
#   - a procfs of the node's PID namespace (hostPID);
# and runs COMMAND with exactly the capabilities CAPS (comma-separated, e.g. BPF,SYSLOG),
# no_new_privs set (allowPrivilegeEscalation: false), as uid 0. COMMAND is exec'd, so the
# process the caller started is the command.
# Not emulated: seccomp RuntimeDefault and AppArmor (see docs/kubernetes.md), the
# memory limit (the memory controller may be elsewhere), /run/netns (the node's own is
# already there).
set -eu

die() { echo "pod.sh: $*" >&2; exit 1; }

if [ "${1-}" != --inside ]; then
	[ $# -ge 6 ] || die "usage: $0 NETNS POD_CGROUP CGROUP2_MOUNT WORKDIR CAPS COMMAND..."
	[ -d "$2" ] || die "$2 is not a cgroup directory"
	echo $$ > "$2/cgroup.procs"
	exec unshare --mount --propagation private --cgroup "$0" --inside "$@"
fi
shift
netns=$1 cgroup_mount=$3 work=$4 caps=$5
shift 5
[ "$(stat -L -c %i /proc/self/ns/net)" = "$(stat -c %i "/run/netns/$netns")" ] ||
	die "not started in the network namespace $netns (nsenter --net=/run/netns/$netns)"

keep=$work/keep
mkdir -p "$keep/bpf" "$keep/tracing" "$keep/cgroup" /run/ephport
mount --bind /sys/fs/bpf "$keep/bpf"
mount --bind /sys/kernel/tracing "$keep/tracing"
mount --bind "$cgroup_mount" "$keep/cgroup"

mount -t sysfs -o ro sysfs /sys
mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup
mount --move "$keep/cgroup" /sys/fs/cgroup
mount -o remount,bind,ro /sys/fs/cgroup
mount --move "$keep/bpf" /sys/fs/bpf
mount --move "$keep/tracing" /sys/kernel/tracing
mount -o remount,bind,ro /sys/kernel/tracing
mount -t proc proc /proc

mount --bind /run/ephport /run/ephport
mount -o remount,bind,ro /

set=-all
for c in ${caps//,/ }; do
	set="$set,+$(echo "$c" | tr 'A-Z' 'a-z')"
done
exec setpriv --bounding-set "$set" --inh-caps -all --no-new-privs -- "$@"
