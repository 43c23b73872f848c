package migrate

import (
	"bytes"
	"encoding/base64"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Redactor returns a writer for wire-level debug output that never lets a
// credential through: each line is written with every secret, and its
// base64 forms in SASL PLAIN (RFC 4616), replaced by ***, and the argument
// of LOGIN, AUTHENTICATE, AUTH and PASS commands hidden whatever it is.
// Output is line-buffered; Close-free: a partial last line is held.
func Redactor(w io.Writer, user string, secrets ...string) io.Writer {
	r := &redactor{w: w}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r.secrets = append(r.secrets, []byte(s),
			[]byte(base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+s))),
			[]byte(base64.StdEncoding.EncodeToString([]byte(user+"\x00"+user+"\x00"+s))))
	}
	return r
}

type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
	buf     []byte
}

// saslBlob is a line that is only base64, as a SASL response sent on its
// own line (a token or credentials) is; attachment lines are hidden too,
// which costs a debug reader nothing.
var saslBlob = regexp.MustCompile(`^(C: )?[A-Za-z0-9+/]{40,}={0,2}$`)

var authCommand = regexp.MustCompile(`(?i)^((?:[A-Za-z0-9.]+ )?(?:LOGIN|AUTHENTICATE \S+|AUTH \S+|PASS)) .*$`)

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := bytes.TrimRight(r.buf[:i], "\r")
		for _, s := range r.secrets {
			line = bytes.ReplaceAll(line, s, []byte("***"))
		}
		line = authCommand.ReplaceAll(line, []byte("$1 ***"))
		if saslBlob.Match(line) {
			line = []byte("***")
		}
		if _, err := r.w.Write(append(line, '\n')); err != nil {
			return 0, err
		}
		r.buf = r.buf[i+1:]
	}
}

// RedactText returns a server's words with every secret, and its base64
// forms, replaced by ***: a server that echoes the password it refused
// ("wrong credentials: x Zebra-Pass-9") must not have it printed, logged or
// stored in the status file.
func RedactText(s, user string, secrets ...string) string {
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, form := range []string{sec,
			base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + sec)),
			base64.StdEncoding.EncodeToString([]byte(user + "\x00" + user + "\x00" + sec)),
			base64.StdEncoding.EncodeToString([]byte(sec))} {
			s = strings.ReplaceAll(s, form, "***")
		}
	}
	return s
}
