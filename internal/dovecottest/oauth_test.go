package dovecottest

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestOAuthPassdb: Dovecot takes a token the introspection endpoint allows,
// by both mechanisms, refuses one it revoked or gave to another user, and
// asks the endpoint each time (no cache hides a revocation).
func TestOAuthPassdb(t *testing.T) {
	s := startOwn(t)
	u, _ := s.AddUser()
	other, _ := s.AddUser()
	s.OAuth.Allow("good", u.Name)
	s.OAuth.Allow("theirs", other.Name)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	login := func(mech, token string) error {
		c, err := imapclient.DialTLS(s.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var cl sasl.Client
		if mech == "OAUTHBEARER" {
			cl = sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: u.Name, Token: token})
		} else {
			cl = xoauth2{u.Name, token}
		}
		return c.Authenticate(cl)
	}
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		if err := login(mech, "good"); err != nil {
			t.Fatalf("%s with a good token: %v\n%s", mech, err, s.Log())
		}
		if err := login(mech, "theirs"); err == nil {
			t.Fatalf("%s: another user's token was taken", mech)
		}
	}
	s.OAuth.Revoke("good")
	if err := login("OAUTHBEARER", "good"); err == nil {
		t.Fatal("a revoked token was taken")
	}
	if n := len(slices.DeleteFunc(s.OAuth.Asked(), func(tok string) bool { return tok != "good" })); n != 3 {
		t.Fatalf("Dovecot asked about the good token %d times, want 3 (once per login)", n)
	}
}

type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}
func (x xoauth2) Next([]byte) ([]byte, error) { return nil, nil }
