// Package rawpop3 is a bare POP3 conversation (RFC 1939) for the real
// servers' smoke tests: it sends a command, returns the status line, and
// reads a multi-line answer byte for byte. It shares no code with
// migrate/pop3, so that the harnesses prove the servers, not the client
// under test.
package rawpop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Conn is a POP3 session.
type Conn struct {
	c net.Conn
	r *bufio.Reader
	// Greeting is the server's first line.
	Greeting string
}

// Dial connects to addr, over implicit TLS when cfg is not nil.
func Dial(addr string, cfg *tls.Config) (*Conn, error) {
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	p := &Conn{c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if p.Greeting, err = p.status(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return p, nil
}

// StartTLS sends STLS (RFC 2595) and continues over TLS.
func (p *Conn) StartTLS(cfg *tls.Config) error {
	if _, err := p.Cmd("STLS"); err != nil {
		return err
	}
	tc := tls.Client(p.c, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	p.c, p.r = tc, bufio.NewReader(tc)
	return nil
}

// Cmd sends line and returns the status line; an -ERR answer is an error
// holding the line.
func (p *Conn) Cmd(line string) (string, error) {
	if _, err := fmt.Fprintf(p.c, "%s\r\n", line); err != nil {
		return "", err
	}
	return p.status()
}

func (p *Conn) status() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "+OK") {
		return line, errors.New(line)
	}
	return line, nil
}

// Multi sends line and returns the multi-line answer with the dot-stuffing
// undone (RFC 1939 section 3) and every other byte, CRLF included, as sent.
func (p *Conn) Multi(line string) ([]byte, error) {
	if _, err := p.Cmd(line); err != nil {
		return nil, err
	}
	var out []byte
	for {
		l, err := p.r.ReadBytes('\n')
		if err != nil {
			return out, err
		}
		if bytes.Equal(l, []byte(".\r\n")) {
			return out, nil
		}
		if l[0] == '.' {
			l = l[1:]
		}
		out = append(out, l...)
	}
}

// Login sends USER and PASS.
func (p *Conn) Login(user, pass string) error {
	if _, err := p.Cmd("USER " + user); err != nil {
		return err
	}
	_, err := p.Cmd("PASS " + pass)
	return err
}

// Close sends QUIT and closes the connection.
func (p *Conn) Close() error {
	p.Cmd("QUIT")
	return p.c.Close()
}
