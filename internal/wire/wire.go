// Package wire holds what mailmove's own line-based protocol clients (POP3,
// and the IMAP append connections) share: a connection that gives up on
// silence but not on slowness, a bounded line reader, and the clipping of a
// server's words before they go into an error.
package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
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

// Speaks names what a server's first bytes show it to be, for an error
// that tells a user who pointed mailmove at the wrong port what is there:
// "an IMAP server", "a POP3 server", "an SMTP server", "a TLS port" (a TLS
// record where plaintext was expected), or "" when it cannot tell.
func Speaks(first []byte) string {
	s := string(first)
	switch {
	case strings.HasPrefix(s, "* OK") || strings.HasPrefix(s, "* PREAUTH") || strings.HasPrefix(s, "* BYE"):
		return "an IMAP server"
	case strings.HasPrefix(s, "+OK") || strings.HasPrefix(s, "-ERR"):
		return "a POP3 server"
	case strings.HasPrefix(s, "220 ") || strings.HasPrefix(s, "220-") || strings.HasPrefix(s, "554 "):
		return "an SMTP server"
	case len(first) >= 3 && first[0] >= 0x14 && first[0] <= 0x17 && first[1] == 3:
		return "a TLS port"
	case strings.HasPrefix(s, "HTTP/") || strings.HasPrefix(s, "SSH-"):
		return "not a mail server (" + strings.TrimSpace(strings.SplitN(s, "\n", 2)[0]) + ")"
	}
	return ""
}

// FirstBytes records the first bytes read from a connection, so that a
// failed greeting can say what answered.
type FirstBytes struct {
	net.Conn
	First []byte
}

func (c *FirstBytes) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(c.First) < 64 && n > 0 {
		c.First = append(c.First, p[:min(n, 64-len(c.First))]...)
	}
	return n, err
}

// ProbeTLS makes a TLS handshake with addr on a connection of its own and
// returns its error: nil, or a certificate error, means the port speaks
// TLS from the start, as a port where a client without TLS waits for a
// greeting that never comes (or is dropped) does. The certificate is
// checked as cfg says; nothing but the handshake is sent.
// A port found silent to TLS too is not probed again by this process: a
// server that does not answer costs the probe's time once.
func ProbeTLS(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, cfg *tls.Config, timeout time.Duration) error {
	if _, ok := silentToTLS.Load(addr); ok {
		return errSilentToTLS
	}
	err := probeTLS(ctx, dial, addr, cfg, timeout)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		silentToTLS.Store(addr, true)
	}
	return err
}

var (
	silentToTLS    sync.Map
	errSilentToTLS = errors.New("no answer to a TLS handshake either")
)

func probeTLS(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, cfg *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return tls.Client(raw, cfg).HandshakeContext(ctx)
}
