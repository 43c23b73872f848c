//go:build !unix

package store

import (
	"os"
	"time"
)

// withLock runs fn; bbolt's own lock, taken after, keeps two runs apart.
func withLock(path string, readOnly bool, wait time.Duration, fn func() error) error { return fn() }

// tryLock: no file locks here; the state file's own lock still keeps two
// runs on one state apart.
func tryLock(*os.File) error { return nil }

func unlock(*os.File) {}
