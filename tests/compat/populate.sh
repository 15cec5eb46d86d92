#!/bin/sh
# Assembles the compatibility bundle: $1 = bundle directory, $2 = source dir.
set -eu
bundle=$1
src=$2
rm -rf "$bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
cp /bin/bash-static "$bundle/rootfs/bin/bash"
cp -r "$src/data" "$bundle/rootfs/data"
echo kos-compat > "$bundle/rootfs/etc/hostname"
# The native run writes its temporary files here; kos gives the VM its own /tmp.
mkdir -p -m 1777 "$bundle/rootfs/tmp"
# The native run (a chroot) needs /dev/null; kos provides its own devices
# and leaves device nodes of a rootfs out.
mkdir -p "$bundle/rootfs/dev"
mknod -m 666 "$bundle/rootfs/dev/null" c 1 3 2>/dev/null || true
cp "$src/bundle.toml" "$bundle/bundle.toml"
cp -r "$src/policy" "$bundle/policy"
