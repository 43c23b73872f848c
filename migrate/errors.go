package migrate

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// CertError reports whether err is a TLS certificate that failed verification.
func CertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &verify)
}
