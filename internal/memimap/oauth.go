package memimap

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// OAuth is an in-memory IMAP server that signs users in with bearer tokens
// only (OAUTHBEARER, RFC 7628, and XOAUTH2), as Gmail and Microsoft 365 do.
// A token is good from Allow until Expire; a session whose token expired is
// ended with BYE at its next APPEND, as providers end expired sessions.
type OAuth struct {
	Addr string
	mem  *imapmemserver.Server
	srv  *imapserver.Server
	user string

	mu      sync.Mutex
	valid   map[string]bool
	Logins  map[string]int // successful sign-ins by mechanism
	Tokens  []string       // every token presented, in order
	appends int
	// expireToken goes bad at the expireAt-th append.
	expireToken string
	expireAt    int
}

// Appends is how many messages were appended.
func (o *OAuth) Appends() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.appends
}

const internalPass = "not-a-password"

// ServeOAuth starts the server for one user with an empty INBOX.
func ServeOAuth(cfg *tls.Config, user string) (*OAuth, error) {
	o := &OAuth{mem: imapmemserver.New(), user: user, valid: map[string]bool{}, Logins: map[string]int{}}
	u := imapmemserver.NewUser(user, internalPass)
	u.Create("INBOX", nil)
	o.mem.AddUser(u)
	o.srv = imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &oauthSession{Session: o.mem.NewSession(), o: o, conn: c}, nil, nil
		},
		Caps:   imapv2.CapSet{imapv2.CapIMAP4rev1: {}, imapv2.CapUIDPlus: {}, imapv2.Cap("AUTH=OAUTHBEARER"): {}, imapv2.Cap("AUTH=XOAUTH2"): {}},
		Logger: nopLogger{},
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return nil, err
	}
	o.Addr = ln.Addr().String()
	go o.srv.Serve(ln)
	return o, nil
}

// Close stops the server.
func (o *OAuth) Close() { o.srv.Close() }

// Allow makes token good.
func (o *OAuth) Allow(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.valid[token] = true
}

// ExpireAfter makes token bad once n messages have been appended: mid-run
// on an event, whatever the machine's speed.
func (o *OAuth) ExpireAfter(token string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expireToken, o.expireAt = token, n
}

// Expire makes token bad from now on.
func (o *OAuth) Expire(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.valid, token)
}

func (o *OAuth) check(mech, user, token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Tokens = append(o.Tokens, token)
	if user != o.user || !o.valid[token] {
		return false
	}
	o.Logins[mech]++
	return true
}

func (o *OAuth) good(token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.valid[token]
}

type oauthSession struct {
	imapserver.Session
	o     *OAuth
	conn  *imapserver.Conn
	token string
}

func (s *oauthSession) Login(string, string) error {
	return &imapv2.Error{Type: imapv2.StatusResponseTypeNo, Code: imapv2.ResponseCodePrivacyRequired, Text: "sign in with OAuth"}
}

func (s *oauthSession) AuthenticateMechanisms() []string { return []string{"OAUTHBEARER", "XOAUTH2"} }

var errToken = &imapv2.Error{Type: imapv2.StatusResponseTypeNo, Code: imapv2.ResponseCodeAuthenticationFailed, Text: "invalid or expired token"}

func (s *oauthSession) Authenticate(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case "OAUTHBEARER":
		return sasl.NewOAuthBearerServer(func(opts sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if !s.o.check("OAUTHBEARER", opts.Username, opts.Token) {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			s.token = opts.Token
			if err := s.Session.Login(s.o.user, internalPass); err != nil {
				return &sasl.OAuthBearerError{Status: "invalid_request"}
			}
			return nil
		}), nil
	case "XOAUTH2":
		return &xoauth2Server{s: s}, nil
	}
	return nil, &imapv2.Error{Type: imapv2.StatusResponseTypeNo, Text: "mechanism not supported"}
}

// Append ends a session whose token has expired, with BYE.
func (s *oauthSession) Append(mailbox string, r imapv2.LiteralReader, opts *imapv2.AppendOptions) (*imapv2.AppendData, error) {
	if !s.o.good(s.token) {
		s.conn.Bye("access token expired")
		return nil, errors.New("access token expired")
	}
	data, err := s.Session.Append(mailbox, r, opts)
	if err == nil {
		s.o.mu.Lock()
		s.o.appends++
		if s.o.expireAt > 0 && s.o.appends == s.o.expireAt {
			delete(s.o.valid, s.o.expireToken)
		}
		s.o.mu.Unlock()
	}
	return data, err
}

// xoauth2Server reads "user=U^Aauth=Bearer T^A^A".
type xoauth2Server struct {
	s    *oauthSession
	done bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.done {
		return nil, true, errToken // the client acknowledged the error report
	}
	var user, token string
	for _, kv := range strings.Split(string(resp), "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "user":
			user = v
		case "auth":
			token = strings.TrimPrefix(v, "Bearer ")
		}
	}
	if !x.s.o.check("XOAUTH2", user, token) {
		x.done = true
		return []byte(`{"status":"401","schemes":"bearer"}`), false, nil
	}
	x.s.token = token
	if err := x.s.Session.Login(x.s.o.user, internalPass); err != nil {
		return nil, true, err
	}
	return nil, true, nil
}
