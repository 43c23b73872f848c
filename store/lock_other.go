//go:build !unix

package store

import "time"

// withLock runs fn; bbolt's own lock, taken after, keeps two runs apart.
func withLock(path string, readOnly bool, wait time.Duration, fn func() error) error { return fn() }
