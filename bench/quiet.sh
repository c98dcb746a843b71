# Sourced by bench scripts that create thousands of files: waits out the file system's memory of
# recent deletions before a timed run.
#
# On an ext4 without a journal (this machine's root), allocating an inode skips every free inode
# deleted in the last 60 s, or 360 s when its inode-table block is dirty, one buffer lookup each
# (ext4's recently_deleted, RECENTCY_MIN + RECENTCY_DIRTY). Deleting 4,000 files between rounds
# made each file and directory created afterwards slower for minutes, on both sides of a
# comparison, by different amounts (seen in perf; bench/README.md, "A quiet file system"). So a
# script deletes nothing between its timed parts, records when it deletes (quiet_mark), and starts
# only QUIET seconds (default 370) after its previous run's deletions (quiet_wait).

QUIET=${QUIET:-370}

# quiet_mark STAMP: records that files were deleted just now.
quiet_mark() { date +%s > "$1"; }

# quiet_wait STAMP: sleeps until QUIET seconds have passed since the time in STAMP (if any).
quiet_wait() {
  [[ -f $1 ]] || return 0
  local wait_s=$(( $(cat "$1") + QUIET - $(date +%s) ))
  if (( wait_s > 0 )); then
    echo "waiting ${wait_s} s: the previous run deleted its files less than ${QUIET} s ago (QUIET=; see bench/quiet.sh)" >&2
    sleep "$wait_s"
  fi
}
