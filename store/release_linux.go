package store

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releasePages hands the state file's pages that bbolt's memory map has
// touched back to the page cache (madvise MADV_DONTNEED on the mapping):
// they stay cached and come back on the next access, at the cost of a minor
// fault, but they no longer count in the process's resident memory. Without
// this, reading the records of a 100,000-message state maps every page of a
// 100 MB file into mailmove's RSS. It is safe for a read-only shared file
// mapping, which bbolt's is, and is done between transactions only.
func releasePages(path string) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, " "+path) {
			continue
		}
		span, _, _ := strings.Cut(line, " ")
		lo, hi, _ := strings.Cut(span, "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
