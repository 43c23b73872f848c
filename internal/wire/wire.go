// Package wire holds what mailmove's own line-based protocol clients (POP3,
// and the IMAP append connections) share: a connection that gives up on
// silence but not on slowness, a bounded line reader, and the clipping of a
// server's words before they go into an error.
package wire

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// IdleConn gives every Read and Write its own deadline, so a frozen server
// is detected after Timeout of silence while a slow but moving transfer is
// not.
type IdleConn struct {
	net.Conn
	Timeout time.Duration
}

func (c *IdleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Read(p)
}

func (c *IdleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Write(p)
}

// ReadLine reads one line and returns it without its line break. A server
// sending a line longer than max bytes gets an error, not our memory. The
// error is br's own (io.EOF included).
func ReadLine(br *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > max {
			return "", fmt.Errorf("reply line longer than %d bytes", max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// Clip shortens a hostile server's text before it goes into an error.
func Clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
