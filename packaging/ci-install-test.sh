#!/usr/bin/env bash
# Installs the built packages on this machine and checks them from the installed files only:
# dpkg -i, systemd-analyze verify, the agent started as its unit starts it (ExecStart, UMask,
# RuntimeDirectory, NoNewPrivileges), a child doing what vzdump does under that sandbox, one
# backup through the installed lullctl, a metrics scrape, then dpkg -r (no process left) and
# dpkg --purge (no file left). Needs root. Usage: packaging/ci-install-test.sh [DEB_DIR]
set -euo pipefail
DEBS=${1:-"$(dirname "$0")/out"}
AGENT_DEB=$(ls "$DEBS"/lull-agent_*.deb)
CONTROLLER_DEB=$(ls "$DEBS"/lull-controller_*.deb)
WORK=$(mktemp -d /tmp/lull-pkg-test.XXXXXX)
AGENT_PID=
fail() { echo "package test: FAIL: $*" >&2; [ -f "$WORK/agent.log" ] && tail -20 "$WORK/agent.log" >&2; exit 1; }
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null
  # After a failure, leave the machine as it was found.
  if dpkg-query -W -f '${Status}' lull-agent lull-controller 2>/dev/null | grep -q installed; then dpkg_ --purge lull-agent lull-controller >/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# The machine's dpkg may be busy with another install: wait for its lock (up to 5 minutes).
dpkg_() {
  local i
  for i in $(seq 1 150); do
    if dpkg "$@" 2>"$WORK/dpkg.err"; then return 0; fi
    grep -q 'lock' "$WORK/dpkg.err" || { cat "$WORK/dpkg.err" >&2; return 1; }
    sleep 2
  done
  cat "$WORK/dpkg.err" >&2; return 1
}
pids_of() { for p in /proc/[0-9]*; do tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "[/]usr/lib/$1/" && echo "${p#/proc/}"; done; true; }

for pkg in lull-agent lull-controller; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q installed && fail "$pkg is already installed; remove it first"
done

echo "== dpkg -i"
dpkg_ -i "$AGENT_DEB" "$CONTROLLER_DEB" >/dev/null
for f in /usr/bin/lull-agent /usr/bin/lullctl /usr/bin/lull-controller /etc/lull/agent.json /lib/systemd/system/lull-agent.service /lib/systemd/system/lull-controller@.service; do
  [ -e "$f" ] || fail "$f was not installed"
done
dpkg-query -W -f '${Conffiles}\n' lull-agent | grep -q '/etc/lull/agent.json' || fail "/etc/lull/agent.json is not a conffile"
[ "$(stat -c %a /var/lib/lull)" = 700 ] || fail "/var/lib/lull is not 0700"

echo "== systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/lull-agent.service
cp /lib/systemd/system/lull-controller@.service "$WORK/lull-controller@app.service"
systemd-analyze verify "$WORK/lull-controller@app.service"

echo "== the packaged config loads as it is (comments and all)"
/usr/bin/lull-agent cert fingerprint --config /etc/lull/agent.json >/dev/null 2>"$WORK/cert.err" || {
  cat "$WORK/cert.err" >&2
  fail "lull-agent cannot read the packaged /etc/lull/agent.json"
}

echo "== the sandbox leaves what vzdump's children need: a mount namespace, /etc and /var/tmp writable"
setpriv --no-new-privs unshare --mount --propagation private true || fail "no mount namespace under NoNewPrivileges"
setpriv --no-new-privs sh -c 'umask 0077 && t=$(mktemp /var/tmp/vzdumptmp.XXXXXX) && rm "$t"' || fail "/var/tmp not writable"

echo "== start the agent as its unit does"
mkdir -p "$WORK/app"
seq 1 20000 >"$WORK/app/records.txt"
cat >/etc/lull/agent.json <<JSON
// written by the package test
{ "node": "pkgtest", "dataDir": "/var/lib/lull/state", "archiveDir": "/var/lib/lull/archives", "stagingDir": "/var/lib/lull/staging",
  "listen": { "address": "127.0.0.1:0", "socket": "/run/lull/agent.sock" },
  "metrics": { "address": "127.0.0.1:0" },
  "guests": [{ "id": "demo", "driver": "dir", "snapshot": "copy", "volumes": [{ "name": "data", "path": "$WORK/app" }] }] }
JSON
UNIT=/lib/systemd/system/lull-agent.service
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
UMASK=$(sed -n 's/^UMask=//p' "$UNIT")
grep -q '^NoNewPrivileges=yes' "$UNIT" || fail "the unit lost NoNewPrivileges"
install -d -m "$(sed -n 's/^RuntimeDirectoryMode=//p' "$UNIT")" /run/lull   # RuntimeDirectory=lull
install -d -m "$(sed -n 's/^StateDirectoryMode=//p' "$UNIT")" /var/lib/lull # StateDirectory=lull
# shellcheck disable=SC2086
(umask "$UMASK" && exec setpriv --no-new-privs $EXEC) >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 100); do grep -q '"metrics listening"' "$WORK/agent.log" && grep -q '"agent listening"' "$WORK/agent.log" && break; sleep 0.2; done
grep -q '"agent listening"' "$WORK/agent.log" || fail "the agent did not start"
[ "$(stat -c %a /run/lull/agent.sock)" = 600 ] || fail "the socket is not 0600"

echo "== one backup through the installed lullctl"
/usr/bin/lullctl backup demo --wait >"$WORK/backup.out" 2>&1 || { cat "$WORK/backup.out"; fail "lullctl backup failed"; }
grep -q 'done' "$WORK/backup.out" || fail "lullctl did not report done"
ls /var/lib/lull/archives/demo/*.tar.zst >/dev/null || fail "no archive was written"
[ "$(stat -c %a "$(ls /var/lib/lull/archives/demo/*.tar.zst | head -1)")" = 600 ] || fail "the archive is not 0600 (UMask)"
METRICS=$(sed -n 's/.*"msg":"metrics listening".*"address":"\([^"]*\)".*/\1/p; s/.*"address":"\([^"]*\)".*"msg":"metrics listening".*/\1/p' "$WORK/agent.log" | head -1)
node -e 'fetch(`http://${process.argv[1]}/metrics`).then(r=>r.text()).then(t=>{if(!/^lull_backup_jobs_total\{.*outcome="done".*\} 1$/m.test(t)){console.error(t);process.exit(1)}})' "$METRICS" \
  || fail "the metrics do not show the done backup"

echo "== dpkg -r leaves no process"
dpkg_ -r lull-agent lull-controller >/dev/null
[ -z "$(pids_of lull)$(pids_of lull-controller)" ] || fail "processes left after dpkg -r: $(pids_of lull)"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=
[ ! -e /usr/bin/lull-agent ] || fail "/usr/bin/lull-agent still there after dpkg -r"

echo "== dpkg --purge leaves no file"
dpkg_ --purge lull-agent lull-controller >/dev/null
for p in /etc/lull /var/lib/lull /var/lib/lull-controller /run/lull /usr/lib/lull /usr/lib/lull-controller /usr/share/doc/lull-agent /usr/share/doc/lull-controller /lib/systemd/system/lull-agent.service; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
echo "package test: OK"
