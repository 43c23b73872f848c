package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/internal/testcert"
)

// TestOAuth migrates into an account that takes bearer tokens only, with
// each mechanism; the server expires the first token mid-run and ends the
// session: mailmove runs token_command again, signs in afresh and finishes
// with every message there once.
func TestOAuth(t *testing.T) {
	for _, mech := range []string{"oauthbearer", "xoauth2"} {
		t.Run(mech, func(t *testing.T) {
			msgs := mailgen.Mailbox(mailgen.Options{Seed: 120, Count: 120, MaxAttach: 10 << 10})
			p := newPair(t, msgs)
			certs, err := testcert.New()
			if err != nil {
				t.Fatal(err)
			}
			srvTLS, _ := certs.TLSConfig()
			o, err := memimap.ServeOAuth(srvTLS, "jean@oauth.example")
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			for i := 1; i <= 12; i++ { // each connection and each new login takes one
				o.Allow(fmt.Sprintf("token-%d", i))
			}
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "ca.pem"), append(certs.CAPEM, p.srv.CAPEM...), 0o600)
			// A token command as an OAuth helper would be: a new token each time.
			script := filepath.Join(dir, "token.sh")
			os.WriteFile(script, []byte("#!/bin/sh\nn=$(cat "+dir+"/n 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > "+dir+"/n\necho token-$n\n"), 0o700)
			host, port, _ := strings.Cut(o.Addr, ":")
			cfg := filepath.Join(dir, "config.toml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("[endpoints.gmail]\ntype = \"imap\"\nhost = %q\nport = %s\nuser = \"jean@oauth.example\"\nauth = %q\ntoken_command = %q\n",
				host, port, mech, script)), 0o600)
			o.ExpireAfter("token-1", 40) // mid-run, on the 40th append
			t.Setenv("MAILMOVE_FROM_PASSWORD", p.src.Password)
			var out bytes.Buffer
			m := &Main{Stdout: &out, Stderr: &out}
			if err := m.ParseFlags([]string{"--from", "pop3s://" + p.src.Name + "@" + p.srv.POP3S, "--to", "gmail", "--config", cfg,
				"--ca-file", filepath.Join(dir, "ca.pem"), "--state", p.state, "--quiet", "--debug-wire"}); err != nil {
				t.Fatal(err)
			}
			sum, err := m.Run(t.Context())
			if err != nil || sum.Copied != len(msgs) {
				t.Fatalf("%+v %v\n%s", sum, err, out.String())
			}
			if !slices.Contains(o.Tokens, "token-1") || !slices.Contains(o.Tokens, "token-2") || o.Logins[strings.ToUpper(mech)] < 2 {
				t.Fatalf("tokens presented %v, logins %v: the expired token was not replaced", o.Tokens, o.Logins)
			}
			if strings.Contains(out.String(), "token-") {
				t.Fatalf("a token is in the --debug-wire output")
			}
			checkExactlyOnce(t, msgs, readOAuth(t, o.Addr, certs.CAPEM, "token-5"))
		})
	}
}

// readOAuth reads back every message of INBOX, signing in with a token.
func readOAuth(t *testing.T, addr string, ca []byte, token string) []stored {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "jean@oauth.example", Token: token})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sec := &imapv2.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, &imapv2.FetchOptions{BodySection: []*imapv2.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]stored, len(bufs))
	for i, b := range bufs {
		out[i] = stored{body: b.FindBodySection(sec)}
	}
	return out
}
