package childserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Options are client options that trust only caPEM (ServerName 127.0.0.1)
// and copy the raw session to transcript when it is not nil.
func Options(caPEM []byte, transcript *Transcript) (*imapclient.Options, error) {
	cfg, err := TLSConfig(caPEM)
	if err != nil {
		return nil, err
	}
	o := &imapclient.Options{TLSConfig: cfg}
	if transcript != nil { // not a typed nil in the interface
		o.DebugWriter = transcript
	}
	return o, nil
}

// DialTLS connects to addr with implicit TLS, trusting only caPEM.
func DialTLS(addr string, caPEM []byte) (*imapclient.Client, error) {
	o, err := Options(caPEM, nil)
	if err != nil {
		return nil, err
	}
	return imapclient.DialTLS(addr, o)
}

// DialStartTLS connects to addr in plaintext and upgrades with STARTTLS,
// trusting only caPEM.
func DialStartTLS(addr string, caPEM []byte) (*imapclient.Client, error) {
	o, err := Options(caPEM, nil)
	if err != nil {
		return nil, err
	}
	return imapclient.DialStartTLS(addr, o)
}

// Login connects to addr with implicit TLS and logs in.
func Login(addr string, caPEM []byte, user, password string) (*imapclient.Client, error) {
	c, err := DialTLS(addr, caPEM)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	return c, nil
}

// Append appends msg to mailbox and waits for the reply; the UID is 0 when
// the server has no UIDPLUS.
func Append(c *imapclient.Client, mailbox string, msg []byte, opts *imap.AppendOptions) (imap.UID, error) {
	cmd := c.Append(mailbox, int64(len(msg)), opts)
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return 0, err
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	d, err := cmd.Wait()
	if err != nil {
		return 0, err
	}
	return d.UID, nil
}

// Stored is a message as FETCH returns it.
type Stored struct {
	UID          imap.UID
	Flags        []imap.Flag
	InternalDate string // RFC 3501 date-time as received, in UTC
	Body         []byte // BODY.PEEK[], every byte the server serves
}

// FetchAll selects mailbox and returns all its messages in sequence order.
func FetchAll(c *imapclient.Client, mailbox string) ([]Stored, error) {
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	bufs, err := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", mailbox, err)
	}
	var out []Stored
	for _, b := range bufs {
		m := Stored{UID: b.UID, Flags: b.Flags, InternalDate: b.InternalDate.UTC().Format("2006-01-02 15:04:05")}
		if len(b.BodySection) > 0 {
			m.Body = b.BodySection[0].Bytes
		}
		out = append(out, m)
	}
	return out, nil
}

// Transcript records a client's raw session (imapclient.Options.DebugWriter)
// so that a test can show the server's exact replies. Safe for the client's
// reading and writing goroutines.
type Transcript struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *Transcript) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.Write(p)
}

// String returns the whole transcript so far.
func (t *Transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// Lines returns the lines that begin with prefix (e.g. "* LIST "), without
// their CRLF.
func (t *Transcript) Lines(prefix string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(t.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TLSConfig trusts only the CA in caPEM and checks that the server's
// certificate is for 127.0.0.1, as mailmove does with --ca-file.
func TLSConfig(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in the CA PEM")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// SeedIMAP appends msgs, in order, to mailbox over one IMAPS connection to
// addr, with INTERNALDATEs one second apart from 2024-01-01 00:00 UTC, for
// servers that have no way in beside their protocols. It waits for each
// APPEND before the next: a server's parallel APPENDs may fail (maddy) and
// the order must be kept.
func SeedIMAP(addr string, caPEM []byte, user, password, mailbox string, msgs [][]byte) error {
	c, err := Login(addr, caPEM, user, password)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer c.Close()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		if _, err := Append(c, mailbox, m, &imap.AppendOptions{Time: base.Add(time.Duration(i) * time.Second)}); err != nil {
			return fmt.Errorf("seed: append message %d: %w", i, err)
		}
	}
	return c.Logout().Wait()
}

// CapToken returns the capability token that announces name: name itself,
// or name=value for one with a value (APPENDLIMIT=35882577), "" when it is
// not announced.
func CapToken(caps imap.CapSet, name string) string {
	if caps.Has(imap.Cap(name)) {
		return name
	}
	for c := range caps {
		if strings.HasPrefix(string(c), name+"=") {
			return string(c)
		}
	}
	return ""
}
