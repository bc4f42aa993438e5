# Sourced by scripts/install-*.sh: apt-get that survives a busy machine and says why it failed.
#
# apt_get ARGS...  runs apt-get; while another apt/dpkg holds its lock (unattended-upgrades, a
#                  parallel CI step), it waits, saying so once, for at most APT_LOCK_WAIT seconds
#                  (default 300), polling every APT_LOCK_POLL seconds (default 5).
# quietly CMD...   runs CMD with its output kept aside; on failure prints the command, its exit
#                  status and its whole output to stderr, and returns that status.
#
# The lock messages matched are apt's own (apt-pkg/contrib/fileutl.cc GetLock: "Could not get lock
# %s. It is held by process %d (%s)" / "Could not get lock %s"; apt-pkg/deb/debsystem.cc: "Unable to
# acquire the dpkg frontend lock (%s), is another process using it?"; apt-pkg/acquire.cc and
# cmdline/apt-get.cc: "Unable to lock directory %s"). DPkg::Lock::Timeout makes apt itself wait
# for the dpkg lock (apt >= 1.9.11); the loop covers the lists and archives locks and older apt.

quietly() {
  local log status
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    rm -f "$log"
    return 0
  else
    status=$?
  fi
  {
    echo "failed (exit $status): $*"
    sed 's/^/  | /' "$log"
  } >&2
  rm -f "$log"
  return "$status"
}

apt_get() {
  local wait_s=${APT_LOCK_WAIT:-300} poll=${APT_LOCK_POLL:-5} log status said=0
  local deadline=$((SECONDS + wait_s))
  log=$(mktemp)
  while :; do
    if apt-get -o "DPkg::Lock::Timeout=$wait_s" "$@" >"$log" 2>&1; then
      rm -f "$log"
      return 0
    else
      status=$?
    fi
    if ! grep -qE "Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory" "$log"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "gave up waiting for the apt/dpkg lock after ${wait_s}s (APT_LOCK_WAIT); another apt or dpkg is still running" >&2
      break
    fi
    if [ "$said" -eq 0 ]; then
      echo "waiting for the apt/dpkg lock held by another process (at most ${wait_s}s)..." >&2
      said=1
    fi
    sleep "$poll"
  done
  {
    echo "failed (exit $status): apt-get $*"
    sed 's/^/  | /' "$log"
  } >&2
  rm -f "$log"
  return "$status"
}
