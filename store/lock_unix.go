//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

// withLock runs fn holding the lock bbolt takes on the file (flock), so
// that the file is never checked, or set aside, while another run writes
// it; the lock is let go before bbolt takes it again.
func withLock(path string, readOnly bool, wait time.Duration, fn func() error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fn()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	how := syscall.LOCK_EX
	if readOnly {
		how = syscall.LOCK_SH
	}
	for deadline := time.Now().Add(wait); ; {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			if err == syscall.EWOULDBLOCK {
				return migrate.ErrLocked
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// tryLock takes an exclusive lock on f at once, or fails.
func tryLock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
