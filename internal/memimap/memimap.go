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
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return "", nil, err
	}
	srv, _ := serve(ln, user, pass, imapv2.CapSet{}, false)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// ServePlain starts the same server without TLS, offering LITERAL+ (RFC
// 7888), for benchmarks that measure mailmove alone: appending to it costs
// the same at the 100,000th message as at the first. It accepts plaintext
// logins. count reports how many messages INBOX holds.
func ServePlain(user, pass string) (addr string, count func() int, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv, u := serve(ln, user, pass, imapv2.CapSet{imapv2.CapLiteralPlus: {}}, true)
	count = func() int {
		data, err := u.Status("INBOX", &imapv2.StatusOptions{NumMessages: true})
		if err != nil || data.NumMessages == nil {
			return -1
		}
		return int(*data.NumMessages)
	}
	return ln.Addr().String(), count, func() { srv.Close() }, nil
}

// serve runs the memory server on ln for one user with an empty INBOX,
// offering IMAP4rev1, UIDPLUS, AUTH=PLAIN and the extra capabilities.
func serve(ln net.Listener, user, pass string, extra imapv2.CapSet, insecure bool) (*imapserver.Server, *imapmemserver.User) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	u.Create("INBOX", nil)
	mem.AddUser(u)
	caps := imapv2.CapSet{imapv2.CapIMAP4rev1: {}, imapv2.CapUIDPlus: {}, imapv2.Cap("AUTH=PLAIN"): {}}
	for c := range extra {
		caps[c] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		Logger:       nopLogger{},
		InsecureAuth: insecure,
	})
	go srv.Serve(ln)
	return srv, u
}
