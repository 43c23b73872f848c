// Package mailserver is what the conformance suites need of a real mail
// server started for tests (Dovecot, Cyrus, Courier, popa3d, maddy, mox): its
// addresses on 127.0.0.1, the CA that signed its certificate, throwaway users,
// and a way to put messages into a user's inbox byte for byte, without going
// through the protocols under test.
//
// Each server lives in a package of its own (internal/dovecottest,
// internal/cyrustest, ...). Each starts the server as a child process in a
// temporary directory, never touches the host's configuration, and fails to
// start with an error that says why; the suites turn that error into a
// failure under CI=true and a skip elsewhere (see Need).
package mailserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"
)

// Addrs are a server's listening addresses ("127.0.0.1:port"); "" for what
// it does not serve.
type Addrs struct {
	IMAP  string // plaintext IMAP that offers STARTTLS
	IMAPS string // IMAP over implicit TLS
	POP3  string // plaintext POP3 (with STLS when the server has it)
	POP3S string // POP3 over implicit TLS
}

// User is a mail account of a running server.
type User struct {
	Name, Password string
	Home           string // where the server keeps the user's mail, when it is a directory
}

// Server is a running mail server.
type Server interface {
	// Name is the server's short name: dovecot, cyrus, courier, popa3d,
	// maddy, mox.
	Name() string
	Addrs() Addrs
	// CAFile is a PEM file of the CA that signed the server's certificate;
	// "" when the server has no TLS.
	CAFile() string
	// AddUser returns a fresh user with an empty mailbox.
	AddUser() (User, error)
	// Seed puts msgs into u's inbox, in order, exactly as given (a server
	// that stores CRLF may convert bare LF), as the POP3 mailbox a
	// migration reads. Where the server keeps an arrival time, message i
	// arrives one second after message i-1.
	Seed(u User, msgs [][]byte) error
	// Log returns the server's log so far, for test failures.
	Log() string
	Stop()
}

// Required reports whether a server that cannot start must fail the test
// run: under CI=true (any true spelling), or when MAILMOVE_REQUIRE_SERVERS
// names it or says "all".
func Required(name string) bool {
	switch os.Getenv("CI") {
	case "true", "TRUE", "True", "1", "yes":
		return true
	}
	req := os.Getenv("MAILMOVE_REQUIRE_SERVERS")
	return req == "all" || containsWord(req, name)
}

func containsWord(list, w string) bool {
	start := 0
	for i := 0; i <= len(list); i++ {
		if i == len(list) || list[i] == ',' || list[i] == ' ' {
			if list[start:i] == w {
				return true
			}
			start = i + 1
		}
	}
	return false
}

// Need returns s, or ends the test: it fails when the server is required
// and could not start (err says why), and is skipped otherwise.
func Need[S Server](t testing.TB, name string, s S, err error) S {
	t.Helper()
	if err == nil {
		return s
	}
	if Required(name) {
		t.Fatalf("%s is required here (CI=true) but could not start: %v", name, err)
	}
	t.Skipf("%s is not available: %v", name, err)
	return s
}

// Skipped is printed once per package whose servers could not start, so
// that a developer without root sees loudly that a part of the suite did
// not run although `go test` says ok.
func Skipped(name string, err error) {
	fmt.Fprintf(os.Stderr, "\n*** %s tests SKIPPED: %v\n*** (make test installs it as root; CI=true makes this a failure)\n\n", name, err)
}

// TLSConfig verifies a server's certificate against the CA in caFile, for
// the name 127.0.0.1, as mailmove does with --ca-file.
func TLSConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}
