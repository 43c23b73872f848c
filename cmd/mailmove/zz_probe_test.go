package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"testing"
	"time"

	"bytes"
	"github.com/mailmove/mailmove/internal/dovecottest"
	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/imap"
	"github.com/mailmove/mailmove/migrate/pop3"
	"github.com/mailmove/mailmove/mime"
)

func BenchmarkZZPop(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	msgs := benchMailbox()
	src, _ := srv.AddUser()
	srv.Seed(src, msgs)
	pem, _ := os.ReadFile(srv.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	for _, tlsMode := range []pop3.TLSMode{pop3.TLSNone, pop3.TLSNone} {
		addr := srv.POP3S
		if tlsMode == pop3.TLSNone {
			addr = srv.POP3
		}
		px, _ := faultproxy.Start(addr)
		px.Always(faultproxy.Fault{Latency: 20 * time.Millisecond})
		addr = px.Addr()
		s := pop3.NewSource(pop3.SourceConfig{Addr: addr, User: src.Name, Password: func() (string, error) { return src.Password, nil },
			Options: pop3.Options{TLS: tlsMode, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}})
		start := time.Now()
		entries, err := s.List(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n := int64(0)
		err = s.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
			sw := &spoolW{}
			cw := &mime.CRLFWriter{W: sw}
			k, err := io.Copy(io.Discard, in.R)
			_ = cw
			n += k
			return err
		})
		b.Logf("tls %v: %d bytes in %v (%v)", tlsMode, n, time.Since(start), err)
		s.Close()
	}
}

type spoolW struct{ b []byte }

func (w *spoolW) Write(p []byte) (int, error) {
	if len(w.b) < 1<<20 {
		w.b = append(w.b, p...)
	}
	return len(p), nil
}

func BenchmarkZZAppend(b *testing.B) {
	srv := dovecottest.Need(b, dovecot)
	msgs := benchMailbox()
	for _, conns := range []int{1, 4, 1, 4} {
		u, _ := srv.AddUser()
		d := imap.New(imap.Config{Addr: srv.IMAP, User: u.Name, Password: func() (string, error) { return u.Password, nil }, TLS: imap.TLSNone})
		busy := busyCPU()
		start := time.Now()
		p := d.Pipe(conns)
		for i := 0; i < len(msgs); i += 100 {
			var out []migrate.Outgoing
			for _, m := range msgs[i:min(i+100, len(msgs))] {
				out = append(out, migrate.Outgoing{Body: migrate.BodyFromBytes(bytes.ReplaceAll(m, []byte("\n"), []byte("\r\n"))), Flags: []string{`\Seen`}})
			}
			p.Send("INBOX", out, func(res []migrate.AppendResult) {
				if res[0].Err != nil {
					b.Error(res[0].Err)
				}
			})
		}
		p.Close()
		b.Logf("conns %d: %v, machine cpu %.2f s, %d in INBOX", conns, time.Since(start), busyCPU()-busy, countINBOX(b, srv, u))
	}
}
