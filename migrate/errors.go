package migrate

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// CertError reports whether err is a TLS certificate that failed verification.
func CertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &verify)
}

// CertIssuer names who issued the certificate a TLS failure is about, when
// err says; an antivirus intercepting mail TLS shows up here by its name.
func CertIssuer(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &verify) && len(verify.UnverifiedCertificates) > 0:
		return verify.UnverifiedCertificates[0].Issuer.String()
	case errors.As(err, &unknown) && unknown.Cert != nil:
		return unknown.Cert.Issuer.String()
	case errors.As(err, &invalid) && invalid.Cert != nil:
		return invalid.Cert.Issuer.String()
	case errors.As(err, &host) && host.Certificate != nil:
		return host.Certificate.Issuer.String()
	}
	return ""
}

// AuthError is a refused login. It is never retried in a loop: providers
// lock accounts after repeated failures (Orange blocks them for up to two
// weeks). When the server's words say the refusal may pass (POP3 [SYS/TEMP]
// and [IN-USE], RFC 3206; IMAP [UNAVAILABLE], RFC 5530), one more attempt
// after a long pause is allowed, and no more.
type AuthError struct {
	Server, User string
	Reply        string // the server's words
	Transient    bool
	Err          error // the protocol's error, when there is one
}

func (e *AuthError) Unwrap() error { return e.Err }

func (e *AuthError) Error() string {
	s := fmt.Sprintf("%s refused the login of %s: %s", e.Server, e.User, e.Reply)
	if e.Transient {
		s += " (the server says this may pass)"
	}
	return s
}

// ErrFull means the destination account is full (IMAP [OVERQUOTA]).
var ErrFull = errors.New("the destination account is full")

// Unreachable is a server a run could not reach, or that did not greet, on
// its first tries: a wrong host or port, or a server that is down. It is
// tried again twice, a few seconds apart, then the run stops and says so,
// instead of waiting all night. (A server reached once and lost later gets
// the patient retries of a network hiccup.)
type Unreachable struct {
	Server string
	Err    error
}

func (e *Unreachable) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.Server, e.Err) }
func (e *Unreachable) Unwrap() error { return e.Err }

// WrongServer is a port where another kind of server answers than the one
// asked for (an IMAP port given as POP3, a TLS port without TLS): no retry
// can help.
type WrongServer struct {
	Server, Want, Found string
	Hint                string
}

func (e *WrongServer) Error() string {
	s := fmt.Sprintf("%s is %s, not %s", e.Server, e.Found, e.Want)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}
