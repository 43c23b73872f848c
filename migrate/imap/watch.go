package imap

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// watchConn is the connection go-imap is handed. go-imap sets fixed deadlines
// of its own (30 s for a response, 5 minutes for a whole APPEND literal) and
// none while waiting for a response to start, so a frozen server hangs it and
// a slow 60 MB upload fails. watchConn ignores those deadlines and instead
// records when a byte last moved; watch closes the connection when an
// operation sees no traffic for the idle timeout.
type watchConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds of the last byte read or written
}

func newWatchConn(c net.Conn) *watchConn {
	w := &watchConn{Conn: c}
	w.touch()
	return w
}

func (c *watchConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *watchConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *watchConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *watchConn) SetDeadline(time.Time) error      { return nil }
func (c *watchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *watchConn) SetWriteDeadline(time.Time) error { return nil }

// idle reports how long the connection has been silent.
func (c *watchConn) idle() time.Duration {
	return time.Since(time.Unix(0, c.last.Load()))
}

// watch runs op, closing the connection if ctx ends or if the connection is
// silent for longer than timeout while op runs. It returns op's error, or
// errStalled when the watchdog fired.
func (c *watchConn) watch(ctx context.Context, timeout time.Duration, op func() error) error {
	c.touch()
	done := make(chan struct{})
	var stalled atomic.Bool
	go func() {
		tick := time.NewTicker(max(timeout/8, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				c.Conn.Close()
				return
			case <-tick.C:
				if c.idle() > timeout {
					stalled.Store(true)
					c.Conn.Close()
					return
				}
			}
		}
	}()
	err := op()
	close(done)
	if err != nil && stalled.Load() {
		return &StallError{Timeout: timeout, Err: err}
	}
	return err
}

// StallError means the server sent nothing for the idle timeout.
type StallError struct {
	Timeout time.Duration
	Err     error
}

func (e *StallError) Error() string {
	return "no reply from the IMAP server for " + e.Timeout.String() + " (connection closed)"
}
func (e *StallError) Unwrap() error { return e.Err }
