package imap

import (
	"fmt"
	"net"
	"strconv"
	"strings"

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

// oauthBearer is OAUTHBEARER (RFC 7628). On failure the server sends its
// JSON error report as a challenge; the client answers with a single ^A
// (section 3.2.3) and the server's NO follows, so a refused token is a
// refusal like a wrong password, never an error that looks transient.
type oauthBearer struct {
	user, token, host string
	port              int
	sent              bool
}

func (o *oauthBearer) Start() (string, []byte, error) {
	o.sent = true
	// The authzid of the GS2 header escapes '=' and ',' (RFC 5801).
	authz := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(o.user)
	msg := "n,a=" + authz + ",\x01"
	if o.host != "" {
		msg += "host=" + o.host + "\x01"
	}
	if o.port != 0 {
		msg += "port=" + strconv.Itoa(o.port) + "\x01"
	}
	return "OAUTHBEARER", []byte(msg + "auth=Bearer " + o.token + "\x01\x01"), nil
}

func (o *oauthBearer) Next(challenge []byte) ([]byte, error) {
	if o.sent {
		return []byte{0x01}, nil // acknowledge the error report; the NO follows
	}
	return nil, fmt.Errorf("oauthbearer: unexpected challenge")
}

// hostPort splits addr for OAUTHBEARER's host and port fields (the whole
// of addr and 0 when it has no port).
func hostPort(addr string) (string, int) {
	if h, p, err := net.SplitHostPort(addr); err == nil {
		return h, atoi(p)
	}
	return addr, 0
}

// saslClient returns the SASL client for a bearer-token mechanism.
func saslClient(mech, user, token, host string, port int) (sasl.Client, error) {
	switch mech {
	case "xoauth2":
		return &xoauth2{user: user, token: token}, nil
	case "oauthbearer":
		return &oauthBearer{user: user, token: token, host: host, port: port}, nil
	}
	return nil, fmt.Errorf("unknown authentication mechanism %q", mech)
}
