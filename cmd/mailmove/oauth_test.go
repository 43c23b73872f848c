package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailmove/mailmove/internal/childserver"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/internal/testcert"
	"github.com/mailmove/mailmove/migrate"
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

// tokenScript writes a token command as an OAuth helper would be: a new
// token (prefix-1, prefix-2, ...) at each call; when the file stale exists
// in dir, the next call prints prefix-stale instead, once: the token a
// helper's cache held past its expiry.
func tokenScript(t *testing.T, dir, prefix string) string {
	t.Helper()
	script := filepath.Join(dir, prefix+".sh")
	body := fmt.Sprintf("#!/bin/sh\ncd %q || exit 1\nif mv %s.stale %s.stale.used 2>/dev/null; then echo %s-stale; exit 0; fi\n"+
		"n=$(cat %s.n 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > %s.n\necho %s-$n\n", dir, prefix, prefix, prefix, prefix, prefix, prefix)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestOAuthDovecot signs in to a real Dovecot with tokens, at both ends
// (POP3 and IMAP), with each mechanism; Dovecot's oauth2 passdb asks an
// introspection endpoint about each. Mid-run the destination's tokens are
// revoked and its sessions kicked, and the helper's next token is a stale
// one: mailmove is refused once, asks for a fresh token, signs in again and
// finishes with every message there once.
func TestOAuthDovecot(t *testing.T) {
	for _, mech := range []string{"oauthbearer", "xoauth2"} {
		t.Run(mech, func(t *testing.T) {
			msgs := mailgen.Mailbox(mailgen.Options{Seed: 121, Count: 150, MaxAttach: 10 << 10})
			p := newPair(t, msgs)
			in := p.srv.OAuth
			for i := 1; i <= 40; i++ {
				in.Allow(fmt.Sprintf("src-%s-%d", mech, i), p.src.Name)
				in.Allow(fmt.Sprintf("dst-%s-%d", mech, i), p.dst.Name)
			}
			dir := t.TempDir()
			src, dst := tokenScript(t, dir, "src-"+mech), tokenScript(t, dir, "dst-"+mech)
			cfg := filepath.Join(dir, "config.toml")
			os.WriteFile(cfg, []byte(fmt.Sprintf(
				"[endpoints.pop]\nurl = %q\nauth = %q\ntoken_command = %q\n\n"+
					"[endpoints.imap]\nurl = %q\nauth = %q\ntoken_command = %q\n",
				"pop3s://"+p.src.Name+"@"+p.srv.POP3S, mech, src, "imaps://"+p.dst.Name+"@"+p.srv.IMAPS, mech, dst)), 0o600)
			var out childserver.Transcript // safe to read while the run writes
			m := &Main{Stdout: &out, Stderr: &out}
			if err := m.ParseFlags([]string{"--from", "pop", "--to", "imap", "--config", cfg, "--ca-file", p.srv.CAFile,
				"--state", p.state, "--quiet", "--debug-wire", "--rate", "60"}); err != nil {
				t.Fatal(err)
			}
			type result struct {
				sum migrate.Summary
				err error
			}
			done := make(chan result, 1)
			exited := make(chan error, 1)
			go func() {
				sum, err := m.Run(t.Context())
				done <- result{sum, err}
				exited <- err
			}()
			waitUntil(t, exited, "40 messages at the destination", func() bool { return p.count(t, p.dst, "INBOX") >= 40 })
			given := slices.DeleteFunc(in.Asked(), func(tok string) bool { return !strings.HasPrefix(tok, "dst-") })
			for _, tok := range given {
				in.Revoke(tok)
			}
			os.WriteFile(filepath.Join(dir, "dst-"+mech+".stale"), nil, 0o600)
			kick, err := p.srv.Doveadm("kick", p.dst.Name).CombinedOutput()
			if err != nil {
				t.Fatalf("doveadm kick: %v %s", err, kick)
			}
			if n := p.count(t, p.dst, "INBOX"); n >= len(msgs) {
				t.Fatalf("all %d messages were there before the kick: the test would prove nothing", n)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(3 * time.Minute):
				t.Fatalf("still running three minutes after the kick:\n%s", out.String())
			}
			if r.err != nil || r.sum.Copied != len(msgs) {
				t.Fatalf("%+v %v\n%s", r.sum, r.err, out.String())
			}
			asked := in.Asked()
			stale := slices.Index(asked, "dst-"+mech+"-stale")
			if stale < 0 {
				t.Fatalf("the stale token was never presented after the kick: asked %v", asked)
			}
			if !slices.ContainsFunc(asked[stale+1:], func(tok string) bool { return strings.HasPrefix(tok, "dst-") && !slices.Contains(given, tok) }) {
				t.Fatalf("no fresh token after the refused one: asked %v", asked)
			}
			if !slices.ContainsFunc(asked, func(tok string) bool { return strings.HasPrefix(tok, "src-") }) {
				t.Fatalf("the POP3 source was not signed in with a token: asked %v", asked)
			}
			if strings.Contains(out.String(), mech+"-") {
				t.Fatalf("a token is in the --debug-wire output:\n%s", out.String())
			}
			checkExactlyOnce(t, msgs, p.fetchAll(t, p.dst, "INBOX"))
		})
	}
}

// TestOAuthRefused: a token Dovecot refuses, at either end, stops the run
// with the refusal, after one fresh try (never a loop that gets an account
// locked), and the token is in no output.
func TestOAuthRefused(t *testing.T) {
	for _, end := range []string{"source", "destination"} {
		t.Run(end, func(t *testing.T) {
			p := newPair(t, mailgen.Mailbox(mailgen.Options{Seed: 122, Count: 5}))
			dir := t.TempDir()
			script := tokenScript(t, dir, "never-"+end)
			from, to := "pop3s://"+p.src.Name+"@"+p.srv.POP3S, "imaps://"+p.dst.Name+"@"+p.srv.IMAPS
			cfg := filepath.Join(dir, "config.toml")
			url := from
			if end == "destination" {
				url = to
			}
			os.WriteFile(cfg, []byte(fmt.Sprintf("[endpoints.x]\nurl = %q\nauth = \"oauthbearer\"\ntoken_command = %q\n", url, script)), 0o600)
			if end == "source" {
				from = "x"
			} else {
				to = "x"
			}
			before := len(p.srv.OAuth.Asked())
			sum, out, err := p.runMain(t, "--from", from, "--to", to, "--config", cfg, "--ca-file", p.srv.CAFile, "--state", p.state, "--quiet", "--debug-wire")
			var auth *migrate.AuthError
			if !errors.As(err, &auth) || sum.Copied != 0 {
				t.Fatalf("%+v %v\n%s", sum, err, out)
			}
			asked := p.srv.OAuth.Asked()[before:]
			if len(asked) != 2 || asked[0] != "never-"+end+"-1" || asked[1] != "never-"+end+"-2" {
				t.Fatalf("Dovecot was asked about %v: want one token, then one fresh one, then nothing", asked)
			}
			var buf bytes.Buffer
			if code := exitCode(&buf, sum, err); code != exitAuth {
				t.Fatalf("exit %d: %s", code, buf.String())
			}
			if strings.Contains(out+buf.String()+err.Error(), "never-"+end+"-") {
				t.Fatalf("a token is in the output:\n%s%s", out, buf.String())
			}
		})
	}
}
