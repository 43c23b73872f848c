package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/testcert"
)

// TestParseURL: what each URL means, and the mistakes that are refused
// rather than guessed at.
func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, typ, tls string
		port          int
		err           string
	}{
		{url: "pop3s://jean@pop.orange.fr", typ: "pop3", tls: "implicit", port: 995},
		{url: "pop3://jean@pop.example.org", typ: "pop3", tls: "starttls", port: 110},
		{url: "pop3://jean@192.168.1.10?tls=none", typ: "pop3", tls: "none", port: 110},
		{url: "imap://jean@10.0.0.2:1143?tls=none", typ: "imap", tls: "none", port: 1143},
		{url: "imaps://jean.dupont@orange.fr@imap.example.net", typ: "imap", tls: "implicit", port: 993},
		{url: "imaps://jean@imap.example.net:0", err: "port 0"},
		{url: "imaps://jean@imap.example.net?tls=maybe", err: "tls must be"},
		{url: "imaps://jean@imap.example.net?timeout=3", err: "unknown URL parameter"},
		{url: "imaps://jean:secret@imap.example.net", err: "password in a URL"},
	} {
		e, err := parseURL(tc.url)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: the error quotes the password", tc.url)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case e.Type != tc.typ || e.TLS != tc.tls || e.Port != tc.port:
			t.Errorf("%s: %s %s %d, want %s %s %d", tc.url, e.Type, e.TLS, e.Port, tc.typ, tc.tls, tc.port)
		}
	}
}

// TestSecretCommandTimeout: a password command that never answers (a
// pinentry waiting all night, with a child holding its output open) is
// given up after the timeout, with a message saying so.
func TestSecretCommandTimeout(t *testing.T) {
	old := secretTimeout
	secretTimeout = 300 * time.Millisecond
	defer func() { secretTimeout = old }()
	start := time.Now()
	_, err := runSecretCommand(context.Background(), "password_command", "pop", "sleep 30 & sleep 30")
	if err == nil || !strings.Contains(err.Error(), "gave nothing in") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %s", d)
	}
	if got, err := runSecretCommand(context.Background(), "password_command", "pop", "printf 'pw \\nmore'"); err != nil || got != "pw " {
		t.Fatalf("got %q %v", got, err)
	}
}

// TestTwoCAFiles: --ca-file given twice trusts both authorities (the
// source's server and the destination's), not only the last.
func TestTwoCAFiles(t *testing.T) {
	dir := t.TempDir()
	m := &Main{}
	var addrs []string
	for i := 0; i < 2; i++ {
		certs, err := testcert.New()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("ca%d.pem", i))
		os.WriteFile(path, certs.CAPEM, 0o600)
		if err := m.caFiles.Set(path); err != nil {
			t.Fatal(err)
		}
		cfg, _ := certs.TLSConfig()
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		addrs = append(addrs, ln.Addr().String())
	}
	for _, a := range addrs {
		cfg, err := m.tlsConfig("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", a, cfg)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		c.Close()
	}
}

// TestSchemeHints: a usage error suggests what the flag takes: POP3 or a
// local store for --from, IMAP for --to.
func TestSchemeHints(t *testing.T) {
	var c Config
	for _, tc := range []struct{ flag, v, want, not string }{
		{"from", "https://x@example.org", "pop3s://", "imap"},
		{"to", "https://x@example.org", "imaps://", "pop3"},
		{"from", "", "mbox:PATH", "imaps"},
		{"to", "", "imaps://you@imap.example.org", "pop3"},
	} {
		_, err := c.resolve(tc.flag, tc.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.not) {
			t.Errorf("--%s %q: %v; want %q without %q", tc.flag, tc.v, err, tc.want, tc.not)
		}
	}
}

// TestIdentityPorts: the same account over the usual ports is one pair;
// another port is another server (two test servers, a tunnel).
func TestIdentityPorts(t *testing.T) {
	id := func(port int) string {
		return identity(Endpoint{Type: "imap", User: "u", Host: "Mail.Example.org", Port: port})
	}
	if id(0) != id(143) || id(143) != id(993) {
		t.Errorf("usual ports differ: %q %q %q", id(0), id(143), id(993))
	}
	if id(10143) == id(993) || id(10143) == id(20143) {
		t.Errorf("other ports not told apart: %q %q %q", id(993), id(10143), id(20143))
	}
}
