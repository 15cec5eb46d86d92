#!/bin/sh
# Populates the python-http example's rootfs from the files of Debian's
# python3 packages installed on this machine (apt-get install python3), so
# no binaries are committed. Usage: make-rootfs.sh [OUT_DIR] (default:
# rootfs/ beside this script). The result is a merged-/usr tree: the
# interpreter, its standard library (without tests, IDLE and Tk), the C
# libraries it links, and the app in /app and /srv.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/rootfs}
pkgs="python3-minimal python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1"
for p in $pkgs; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || {
    echo "make-rootfs.sh: Debian package $p is not installed (apt-get install python3)" >&2; exit 1; }
done
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/usr/bin" "$tmp/usr/lib" "$tmp/usr/lib64" "$tmp/app" "$tmp/srv"
ln -s usr/bin "$tmp/bin"
ln -s usr/lib "$tmp/lib"
ln -s usr/lib64 "$tmp/lib64"
for p in $pkgs; do dpkg -L "$p"; done |
  grep -E '^/(usr/)?(bin|lib|lib64)/' |
  grep -v -E '^/usr/lib/python3\.11/(test|idlelib|tkinter|turtledemo|ensurepip|lib2to3|pydoc_data)(/|$)' |
  grep -v -E '^/(usr/)?lib/x86_64-linux-gnu/(gconv|audit)(/|$)' |
  sort -u | while IFS= read -r f; do
    if [ -L "$f" ] || [ -f "$f" ]; then
      cp -P --parents "$f" "$tmp"
    fi
  done
cp "$here/server.py" "$tmp/app/server.py"
cp "$here/index.html" "$tmp/srv/index.html"
rm -rf "$out"
mv "$tmp" "$out"
