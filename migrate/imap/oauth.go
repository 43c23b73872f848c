package imap

import (
	"fmt"

	"github.com/emersion/go-sasl"
)

// xoauth2 is Google's and Microsoft's XOAUTH2 SASL mechanism: one message,
// "user=U^Aauth=Bearer T^A^A". On failure the server sends a JSON error as a
// challenge, to be answered with an empty response before its NO.
type xoauth2 struct {
	user, token string
	sent        bool
}

func (x *xoauth2) Start() (string, []byte, error) {
	x.sent = true
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	if x.sent {
		return []byte{}, nil // acknowledge the error report; the NO follows
	}
	return nil, fmt.Errorf("xoauth2: unexpected challenge")
}

// saslClient returns the SASL client for a bearer-token mechanism.
func saslClient(mech, user, token, host string, port int) (sasl.Client, error) {
	switch mech {
	case "xoauth2":
		return &xoauth2{user: user, token: token}, nil
	case "oauthbearer":
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port}), nil
	}
	return nil, fmt.Errorf("unknown authentication mechanism %q", mech)
}
