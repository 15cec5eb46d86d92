#!/usr/bin/env bash
# `kos policy` through the built binary: compile, explain, audit2allow and
# the exit statuses (0 ok, 1 failing policy or tests, 2 bad input).
# Usage: policy_cli_test.sh KOS EXAMPLES_DIR
set -u
kos=$1 examples=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
check() { # name expected-status actual-status [output pattern] [output]
    if [ "$2" != "$3" ]; then echo "FAIL $1: status $3, expected $2"; fails=$((fails + 1)); return; fi
    if [ $# -ge 5 ] && ! grep -qF -- "$4" <<<"$5"; then
        echo "FAIL $1: output lacks '$4':"; echo "$5"; fails=$((fails + 1)); return
    fi
    echo "ok   $1"
}

out=$("$kos" policy compile "$examples"/*.kpol -o "$dir/system.pol" 2>&1); check compile 0 $? "tests passed" "$out"
out=$("$kos" policy explain "$dir/system.pol" \
      'request app_t -> net_t net.Socket.connect address=10.0.0.5 port=5432 proto=6' 2>&1)
check explain-deny 0 $? "verdict: deny" "$out"
check explain-rule 0 0 "app.kpol:14:1" "$out"
out=$("$kos" policy explain "$dir/system.pol" 'request app_t -> vfs_t vfs.File.opn' 2>&1)
check explain-bad-request 2 $? "<request>:1:33: found 'opn', expected a method of vfs.File" "$out"
out=$("$kos" policy explain "$dir/nothing.pol" 'request app_t -> vfs_t vfs.File.open' 2>&1)
check explain-no-policy 2 $?
head -c 1000 "$dir/system.pol" > "$dir/cut.pol"
out=$("$kos" policy explain "$dir/cut.pol" 'request app_t -> vfs_t vfs.File.close' 2>&1)
check explain-truncated-policy 2 $? "does not load" "$out"

# A failing test: check says so (1) and compile writes nothing.
cp "$examples"/*.kpol "$dir/"
printf 'test "wrong" {\n    expect allow request web_t -> vfs_t vfs.File.unlink path="/x"\n}\n' >> "$dir/web.kpol"
out=$("$kos" policy check "$dir"/*.kpol 2>&1); check check-failing-test 1 $? "of 7 tests passed" "$out"
check check-failure-line 0 0 "web.kpol:43:5: expected allow, got deny by rule" "$out"
out=$("$kos" policy compile "$dir"/*.kpol -o "$dir/bad.pol" 2>&1); check compile-refuses 1 $? "not written" "$out"
[ -e "$dir/bad.pol" ] && { echo "FAIL compile-refuses: bad.pol written"; fails=$((fails + 1)); }
printf 'domain a_t\nallow request a_t -> a_t\n' > "$dir/syntax.kpol"
out=$("$kos" policy check "$dir/syntax.kpol" 2>&1); check check-syntax 1 $? "syntax.kpol:2:25: found end of line" "$out"
out=$("$kos" policy check "$dir/missing.kpol" 2>&1); check check-missing 2 $? "missing.kpol: No such file" "$out"

printf '%s\n' \
  '{"verdict":"deny","rule":"default-deny","kind":"request","source":"app_t","target":"vfs_t","interface":"vfs.File","method":"unlink","fields":{"path":"/srv/app/data/a"}}' \
  '{"verdict":"deny","rule":"default-deny","kind":"request","source":"app_t","target":"vfs_t","interface":"vfs.File","method":"unlink","fields":{"path":"/srv/app/data/b"}}' \
  > "$dir/audit.jsonl"
out=$("$kos" policy audit2allow "$dir/audit.jsonl" 2>&1); check audit2allow 0 $? "allow request app_t -> vfs_t vfs.File.unlink" "$out"
check audit2allow-count 0 0 "# 2 denials" "$out"
out=$("$kos" policy audit2allow - < "$dir/audit.jsonl" 2>&1); check audit2allow-stdin 0 $? "# 2 denials" "$out"
out=$(printf '{"verdict":"deny"}\n' | "$kos" policy audit2allow 2>&1)
check audit2allow-bad 2 $? "kos: -:1: not an audit record: no \"kind\" key" "$out"
# Bundles are packed with the policy compiler: a failing policy test
# refuses the pack, and nothing is written.
mkdir -p "$dir/b/rootfs" "$dir/b/policy"
printf '#!/bin/sh\n' > "$dir/b/rootfs/run"
printf '[app]\nname = "t"\nentrypoint = ["/run"]\n[labels]\n"/**" = "app_file_t"\n[policy]\ndomain = "app_t"\nsources = ["policy/app.kpol", "policy/labels.kpol"]\n' > "$dir/b/bundle.toml"
printf 'domain init_t, app_t\nresource app_file_t\n' > "$dir/b/policy/labels.kpol"
printf 'include "labels.kpol"\nallow execute init_t -> app_t where program == "/run"\ntest "t" {\n  expect allow execute init_t -> app_t program="/run"\n}\n' > "$dir/b/policy/app.kpol"
out=$("$kos" pack "$dir/b" -o "$dir/b.kos" 2>&1); check pack-compiles-policy 0 $?
out=$("$kos" inspect "$dir/b.kos" 2>&1); check inspect-compiled 0 $? "compiled-policy policy.bin" "$out"
printf 'test "u" {\n  expect deny execute init_t -> app_t program="/run"\n}\n' >> "$dir/b/policy/app.kpol"
out=$("$kos" pack "$dir/b" -o "$dir/b2.kos" 2>&1)
check pack-refuses-failing-policy 1 $? "policy/app.kpol:7:3: expected deny, got allow by rule policy/app.kpol:2:1" "$out"
[ -e "$dir/b2.kos" ] && { echo "FAIL pack-refuses-failing-policy: b2.kos written"; fails=$((fails + 1)); }
exit $((fails > 0))
