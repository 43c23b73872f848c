// Package memimap serves go-imap's in-memory IMAP server on 127.0.0.1 over
// implicit TLS, for the demo and for fast tests.
package memimap

import (
	"crypto/tls"
	"net"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// Serve starts a server with one user owning an empty INBOX, and returns its
// address and a function that stops it.
func Serve(cfg *tls.Config, user, pass string) (addr string, stop func(), err error) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	u.Create("INBOX", nil)
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:   imapv2.CapSet{imapv2.CapIMAP4rev1: {}, imapv2.CapUIDPlus: {}, imapv2.Cap("AUTH=PLAIN"): {}},
		Logger: nopLogger{},
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// ServePlain starts the same server without TLS, offering LITERAL+ (RFC
// 7888), for benchmarks that measure mailmove alone: appending to it costs
// the same at the 100,000th message as at the first. It accepts plaintext
// logins. count reports how many messages INBOX holds.
func ServePlain(user, pass string) (addr string, count func() int, stop func(), err error) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	u.Create("INBOX", nil)
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imapv2.CapSet{imapv2.CapIMAP4rev1: {}, imapv2.CapUIDPlus: {}, imapv2.CapLiteralPlus: {},
			imapv2.Cap("AUTH=PLAIN"): {}},
		Logger:       nopLogger{},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	go srv.Serve(ln)
	count = func() int {
		data, err := u.Status("INBOX", &imapv2.StatusOptions{NumMessages: true})
		if err != nil || data.NumMessages == nil {
			return -1
		}
		return int(*data.NumMessages)
	}
	return ln.Addr().String(), count, func() { srv.Close() }, nil
}
