package dovecottest

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
)

// Introspection is the OAuth 2.0 token introspection endpoint (RFC 7662)
// that Dovecot's oauth2 passdb asks, on 127.0.0.1: Dovecot itself checks
// the XOAUTH2 and OAUTHBEARER logins, and this only says which tokens are
// good and whose they are.
type Introspection struct {
	URL string

	srv    *http.Server
	mu     sync.Mutex
	owner  map[string]string // token: user it is valid for
	asked  []string          // every token Dovecot asked about, in order
	closed bool
}

func startIntrospection() (*Introspection, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &Introspection{URL: "http://" + ln.Addr().String() + "/introspect", owner: map[string]string{}}
	in.srv = &http.Server{Handler: http.HandlerFunc(in.serve)}
	go in.srv.Serve(ln)
	return in, nil
}

// serve answers Dovecot's POST (introspection_mode = post): the token in a
// form field, the answer a JSON object with active and username.
func (in *Introspection) serve(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	in.mu.Lock()
	in.asked = append(in.asked, token)
	user, ok := in.owner[token]
	in.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user, "scope": "imap pop3"})
}

// Allow makes token good for user.
func (in *Introspection) Allow(token, user string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.owner[token] = user
}

// Revoke makes token bad from now on, as an expiry does.
func (in *Introspection) Revoke(token string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.owner, token)
}

// Asked returns the tokens Dovecot asked about so far, in order.
func (in *Introspection) Asked() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.asked...)
}

func (in *Introspection) close() {
	if in != nil {
		in.srv.Close()
	}
}
