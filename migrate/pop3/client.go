// Package pop3 is mailmove's POP3 client (RFC 1939, with CAPA and PIPELINING
// from RFC 2449, STLS from RFC 2595 and AUTH PLAIN from RFC 5034) and the
// migrate.Source adapter built on it.
//
// We own this client because the public Go ones corrupt messages: they do not
// undo dot-stuffing and break long lines (see shared/notes/LIBRARIES.md).
package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailmove/mailmove/internal/wire"
	"github.com/mailmove/mailmove/migrate"
)

// TLSMode says how a connection is protected.
type TLSMode int

const (
	TLSImplicit TLSMode = iota // TLS from the first byte (pop3s, port 995)
	TLSStartTLS                // plain connection upgraded with STLS, which must succeed
	TLSNone                    // no TLS: only with the user's explicit consent
)

// Error is a -ERR reply. Its text is the server's, which may say why (RFC 2449
// section 8 response codes such as [AUTH], [IN-USE] or [SYS/TEMP]).
type Error struct {
	Cmd string // the command, without arguments
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("pop3 %s: server said: %s", e.Cmd, e.Msg) }

// Code returns the RFC 2449 response code in brackets, upper-cased, or "".
func (e *Error) Code() string {
	if strings.HasPrefix(e.Msg, "[") {
		if i := strings.IndexByte(e.Msg, ']'); i > 0 {
			return strings.ToUpper(e.Msg[1:i])
		}
	}
	return ""
}

// ErrAuth marks a login the server refused.
var ErrAuth = errors.New("login refused")

// maxLine bounds a status or listing line: a server sending an endless line
// gets an error, not our memory. Message content has no such limit.
const maxLine = 64 << 10

// Client is one POP3 session. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	caps map[string]string // CAPA name (upper case) → its arguments
	tls  bool

	open *dotReader // a multi-line body the caller has not finished reading
	opts Options
	// Bad lists what the server's listings held that could not be read
	// (ListAll), for the user's notes.
	Bad      []string
	maxLines int // bound of a listing, from STAT; 0 before
}

// Options configure Dial.
type Options struct {
	TLS       TLSMode
	TLSConfig *tls.Config   // ServerName must be set for verification
	Timeout   time.Duration // idle timeout per operation; 0 means 60 s
	Dialer    func(ctx context.Context, network, addr string) (net.Conn, error)
	// Debug, when set, receives the commands sent ("C: ") and the status
	// lines received ("S: "), never message content; credentials are
	// written as *** here already, and Debug should be a migrate.Redactor too.
	Debug io.Writer
}

// Dial connects, reads the greeting, asks for the capabilities and, for
// TLSStartTLS, upgrades the connection. It does not log in.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	dial := opts.Dialer
	if dial == nil {
		d := &net.Dialer{Timeout: opts.Timeout}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, min(opts.Timeout, greetTimeout))
	raw, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &migrate.Unreachable{Server: addr, Err: err}
	}
	first := &wire.FirstBytes{Conn: raw}
	// A server that does not greet within seconds will not: the idle
	// timeout is for later, when a slow transfer may pause.
	idle := &wire.IdleConn{Conn: first, Timeout: min(opts.Timeout, greetTimeout)}
	var conn net.Conn = idle
	c := &Client{opts: opts}
	if opts.TLS == TLSImplicit {
		tc := tls.Client(conn, opts.TLSConfig)
		if err := handshake(ctx, tc, idle.Timeout); err != nil {
			raw.Close()
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) {
				return nil, &migrate.Fatal{Err: wrongServer(addr, "a POP3 server with TLS", first.First, true)}
			}
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) {
				return nil, &migrate.Unreachable{Server: addr, Err: fmt.Errorf("no TLS handshake: %w", err)}
			}
			return nil, err
		}
		first = &wire.FirstBytes{Conn: tc} // what the server says inside TLS
		conn, c.tls = first, true
	}
	c.setConn(conn)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if _, err := c.status("greeting"); err != nil {
		raw.Close()
		if what := wire.Speaks(first.First); what != "" && what != "a POP3 server" {
			return nil, &migrate.Fatal{Err: wrongServer(addr, "a POP3 server", first.First, false)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
			if opts.TLS != TLSImplicit && len(first.First) == 0 {
				// Silence, or a hang-up, is what a TLS port gives a
				// client that does not begin with TLS.
				if perr := wire.ProbeTLS(ctx, dial, addr, opts.TLSConfig, probeTimeout); perr == nil || migrate.CertError(perr) {
					return nil, &migrate.Fatal{Err: &migrate.WrongServer{Server: addr, Want: "a POP3 server without TLS at first",
						Found: "a port that expects TLS from the start", Hint: "use pop3s://USER@HOST:PORT for it"}}
				}
			}
			return nil, &migrate.Unreachable{Server: addr, Err: fmt.Errorf("no greeting: %w", err)}
		}
		return nil, err
	}
	idle.Timeout = opts.Timeout
	c.capa() // optional (RFC 2449): an old server that refuses it is fine
	if opts.TLS == TLSStartTLS {
		if err := c.startTLS(ctx, addr, opts.TLSConfig, opts.Timeout); err != nil {
			raw.Close()
			return nil, err
		}
	}
	return c, nil
}

// greetTimeout bounds the wait for a connection and its greeting;
// probeTimeout the TLS handshake that tells a TLS port after a silence.
const (
	greetTimeout = 15 * time.Second
	probeTimeout = 3 * time.Second
)

// wrongServer says what answered at addr instead of a POP3 server, and what
// to do about it.
func wrongServer(addr, want string, first []byte, withTLS bool) error {
	found := wire.Speaks(first)
	e := &migrate.WrongServer{Server: addr, Want: want, Found: found}
	switch {
	case found == "a POP3 server" && withTLS:
		e.Found, e.Hint = "a POP3 port without TLS", "use pop3://USER@HOST:PORT (STLS) for this port, or the server's TLS port (995)"
	case found == "a TLS port":
		e.Found, e.Hint = "a port that expects TLS from the start", "use pop3s://USER@HOST:PORT for it"
	case found == "an IMAP server":
		e.Hint = "use imap:// or imaps:// for it, or the server's POP3 port (110, or 995 with TLS)"
	case found == "":
		e.Found = fmt.Sprintf("something that does not speak POP3 (it said %q)", wire.Clip(string(first)))
	default:
		e.Hint = "check the port: POP3 is 110 (995 with TLS)"
	}
	return e
}

func handshake(ctx context.Context, tc *tls.Conn, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return tc.HandshakeContext(hctx)
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, 32<<10)
	c.bw = bufio.NewWriter(conn)
}

// TLS reports whether the session is encrypted.
func (c *Client) TLS() bool { return c.tls }

// Has reports whether the server announced the capability (upper case).
func (c *Client) Has(capability string) bool {
	_, ok := c.caps[capability]
	return ok
}

// Close drops the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) startTLS(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) error {
	noTLS := func(why string) error {
		// No retry can help: said at once, with what to do.
		return &migrate.Fatal{Err: &migrate.WrongServer{Server: addr, Want: "a POP3 server with STLS",
			Found: "a POP3 server without TLS on this port (" + why + ")",
			Hint:  "use pop3s://USER@HOST:PORT at its TLS port (995), or, on a network you trust, pop3://USER@HOST:PORT?tls=none with --allow-plaintext"}}
	}
	if !c.Has("STLS") && c.caps != nil {
		return noTLS("its capabilities have no STLS")
	}
	if _, err := c.cmd("STLS", "STLS"); err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			return noTLS(fmt.Sprintf("it refused STLS: %q", wire.Clip(perr.Msg)))
		}
		return err
	}
	if c.br.Buffered() > 0 {
		// Bytes after the +OK before the handshake would be a STARTTLS
		// command-injection attack (CVE-2011-0411 class).
		return errors.New("pop3: server sent data before the TLS handshake")
	}
	tc := tls.Client(c.conn, cfg)
	if err := handshake(ctx, tc, timeout); err != nil {
		return err
	}
	c.setConn(tc)
	c.tls = true
	c.capa() // capabilities may change after STLS (RFC 2595 section 4)
	return nil
}

func (c *Client) capa() {
	lines, err := c.multi("CAPA", "CAPA")
	if err != nil {
		c.caps = nil
		return
	}
	c.caps = make(map[string]string, len(lines))
	for _, l := range lines {
		name, args, _ := strings.Cut(strings.TrimSpace(l), " ")
		c.caps[strings.ToUpper(name)] = args
	}
}

// Auth logs in: AUTH PLAIN when the server offers it (SASL), else USER/PASS.
// A refusal wraps ErrAuth.
func (c *Client) Auth(user, pass string) error {
	if c.saslPlain() {
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		// RFC 5034 section 4: the initial response may go on the command line.
		_, err := c.cmdRedacted("AUTH", "AUTH PLAIN "+resp)
		return authErr(err, user, pass)
	}
	if _, err := c.cmd("USER", "USER "+user); err != nil {
		return authErr(err, user, pass)
	}
	_, err := c.cmdRedacted("PASS", "PASS "+pass)
	return authErr(err, user, pass)
}

// AuthBearer signs in with an OAuth 2.0 bearer token: mech is "xoauth2"
// or "oauthbearer" (RFC 7628), sent as an initial response (RFC 5034). When
// the server answers with an error report ("+ <base64 JSON>"), an empty
// line acknowledges it and the -ERR follows. A refusal wraps ErrAuth.
func (c *Client) AuthBearer(mech, user, token, host string, port int) error {
	var name, msg string
	switch mech {
	case "xoauth2":
		name, msg = "XOAUTH2", "user="+user+"\x01auth=Bearer "+token+"\x01\x01"
	case "oauthbearer":
		name, msg = "OAUTHBEARER", fmt.Sprintf("n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01", user, host, port, token)
	default:
		return fmt.Errorf("unknown authentication mechanism %q", mech)
	}
	line := "AUTH " + name + " " + base64.StdEncoding.EncodeToString([]byte(msg))
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("pop3: refusing to send a token with a line break")
	}
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.debug("C: AUTH " + name + " ***")
	reply, err := c.readLine()
	if err != nil {
		return fmt.Errorf("pop3 AUTH: %w", err)
	}
	c.debug("S: " + reply)
	if strings.HasPrefix(reply, "+ ") || reply == "+" {
		// The server's error report: acknowledge it; its -ERR follows.
		if _, err := c.bw.WriteString("\r\n"); err != nil {
			return err
		}
		c.bw.Flush()
		_, err := c.status("AUTH")
		if err == nil {
			err = &Error{Cmd: "AUTH", Msg: "token refused"}
		}
		return authErr(err, user, token)
	}
	switch {
	case strings.HasPrefix(reply, "+OK"):
		return nil
	case strings.HasPrefix(reply, "-ERR"):
		return authErr(&Error{Cmd: "AUTH", Msg: strings.TrimSpace(reply[4:])}, user, token)
	}
	return fmt.Errorf("pop3 AUTH: unexpected reply %q", wire.Clip(reply))
}

func (c *Client) saslPlain() bool {
	for _, m := range strings.Fields(strings.ToUpper(c.caps["SASL"])) {
		if m == "PLAIN" {
			return true
		}
	}
	return false
}

// authErr marks a refused login, with the server's words redacted: a
// server may quote the password it refused.
func authErr(err error, user string, secrets ...string) error {
	var e *Error
	if errors.As(err, &e) {
		e.Msg = migrate.RedactText(e.Msg, user, secrets...)
		return fmt.Errorf("%w: %w", ErrAuth, e)
	}
	if err != nil {
		// Any other reply a server gives at login (an "unexpected reply"
		// that quotes what it got) is redacted too.
		if text := migrate.RedactText(err.Error(), user, secrets...); text != err.Error() {
			return &redacted{text: text, err: err}
		}
	}
	return err
}

// redacted is an error whose text had a secret taken out; the error it
// wraps is still there for errors.Is (a timeout stays a timeout).
type redacted struct {
	text string
	err  error
}

func (r *redacted) Error() string { return r.text }
func (r *redacted) Unwrap() error { return r.err }

// UTF8 turns on UTF-8 mode (RFC 6856 section 2): without it, a server that
// supports it may serve a message with 8-bit header bytes as a downgraded
// stand-in (Courier: "Cannot display Unicode content", the original
// attached as message/global) instead of the message itself. It is sent in
// the AUTHORIZATION state, before logging in, as the RFC asks.
func (c *Client) UTF8() error {
	_, err := c.cmd("UTF8", "UTF8")
	return err
}

// Stat returns the number of messages and their total size.
func (c *Client) Stat() (count int, size int64, err error) {
	return parseStat(c.cmd("STAT", "STAT"))
}

func parseStat(line string, err error) (count int, size int64, _ error) {
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("pop3 STAT: malformed reply %q", wire.Clip(line))
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		return 0, 0, fmt.Errorf("pop3 STAT: malformed reply %q", wire.Clip(line))
	}
	return count, size, nil
}

// MsgInfo is one line of a LIST or UIDL listing.
type MsgInfo struct {
	Num  int
	Size int64  // from LIST
	UID  string // from UIDL
}

// List returns every message's number and size (LIST).
func (c *Client) List() ([]MsgInfo, error) {
	lines, err := c.multi("LIST", "LIST")
	if err != nil {
		return nil, err
	}
	infos, _ := parseList(lines)
	return infos, nil
}

// parseList reads LIST lines. A line it cannot read whole is not the end of
// the listing: a message number with a size that is no size (a server's
// "2 -5") is listed with its size unknown (0), and a line without a message
// number is left out; bad says what was wrong with each, for a note.
func parseList(lines []string) (out []MsgInfo, bad []string) {
	out = make([]MsgInfo, 0, len(lines))
	seen := make(map[int]bool, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		n, err := strconv.Atoi(firstOr(f))
		if err != nil || n <= 0 || seen[n] {
			bad = append(bad, fmt.Sprintf("LIST line %q left out (no message number, or one listed twice)", wire.Clip(l)))
			continue
		}
		seen[n] = true
		var size int64 = -1
		if len(f) >= 2 {
			size, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err != nil || size < 0 {
			bad = append(bad, fmt.Sprintf("LIST gives message %d no usable size (%q): it is read anyway", n, wire.Clip(l)))
			size = 0
		}
		out = append(out, MsgInfo{Num: n, Size: size})
	}
	return out, bad
}

func firstOr(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// ErrNoUIDL means the server does not implement UIDL (it is optional in RFC 1939).
var ErrNoUIDL = errors.New("pop3: server has no UIDL")

// UIDL returns every message's unique id. A server that refuses the command
// gives ErrNoUIDL.
func (c *Client) UIDL() (map[int]string, error) {
	return parseUIDL(c.multi("UIDL", "UIDL"))
}

func parseUIDL(lines []string, err error) (map[int]string, error) {
	var e *Error
	if errors.As(err, &e) {
		return nil, fmt.Errorf("%w (%s)", ErrNoUIDL, e.Msg)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int]string, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue // that message is recognised by its content
		}
		n, err := strconv.Atoi(f[0])
		// RFC 1939 section 7: 1 to 70 characters in the range 0x21 to 0x7E.
		if err != nil || n <= 0 || len(f[1]) > 70 {
			continue
		}
		out[n] = f[1]
	}
	return out, nil
}

// Retr starts retrieving message n and returns its content, dot-decoded. The
// reader must be read to io.EOF (or the session is abandoned with Close)
// before the next command.
func (c *Client) Retr(n int) (io.Reader, error) {
	if _, err := c.cmd("RETR", "RETR "+strconv.Itoa(n)); err != nil {
		return nil, err
	}
	c.open = newDotReader(c.br)
	return c.open, nil
}

// QueueRetr writes a RETR command without waiting for the reply (RFC 2449
// section 6.6, PIPELINING); Flush sends what is queued, and ReadRetr reads
// the replies in the order the commands went. Only for a server that offers
// PIPELINING.
func (c *Client) QueueRetr(n int) error {
	c.debug("C: RETR " + strconv.Itoa(n))
	_, err := c.bw.WriteString("RETR " + strconv.Itoa(n) + "\r\n")
	return err
}

// Flush sends the queued commands.
func (c *Client) Flush() error { return c.bw.Flush() }

// ReadRetr reads the reply to the oldest RETR queued and returns the content,
// as Retr does.
func (c *Client) ReadRetr() (io.Reader, error) {
	if c.open != nil {
		if err := c.open.drain(); err != nil {
			return nil, err
		}
		c.open = nil
	}
	if _, err := c.status("RETR"); err != nil {
		return nil, err
	}
	c.open = newDotReader(c.br)
	return c.open, nil
}

// headerMax bounds the header kept per message by TopHeaders.
const headerMax = 256 << 10

// TopHeaders reads the header of each message in nums with TOP n 0 (RFC 1939
// section 7) and calls fn with the header (at most 256 KB of it) or the
// server's -ERR for that message. When the server offers PIPELINING (RFC
// 2449 section 6.6) the commands go out in windows, so a long mailbox costs
// a few round trips instead of one per message. After an error, from fn or
// the connection, the session is out of step: close it.
func (c *Client) TopHeaders(nums []int, fn func(i int, header []byte, err error) error) error {
	if c.open != nil {
		if err := c.open.drain(); err != nil {
			return err
		}
		c.open = nil
	}
	window := 1
	if c.Has("PIPELINING") {
		window = 32
	}
	for start := 0; start < len(nums); start += window {
		batch := nums[start:min(start+window, len(nums))]
		for _, n := range batch {
			c.debug("C: TOP " + strconv.Itoa(n) + " 0")
			if _, err := c.bw.WriteString("TOP " + strconv.Itoa(n) + " 0\r\n"); err != nil {
				return err
			}
		}
		if err := c.bw.Flush(); err != nil {
			return err
		}
		for j := range batch {
			_, err := c.status("TOP")
			var perr *Error
			if errors.As(err, &perr) {
				if err := fn(start+j, nil, err); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			d := newDotReader(c.br)
			h, err := io.ReadAll(io.LimitReader(d, headerMax))
			if err == nil {
				err = d.drain()
			}
			if err != nil {
				return fmt.Errorf("pop3 TOP: %w", err)
			}
			if err := fn(start+j, h, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Dele marks message n for deletion. The server deletes it only when the
// session ends with QUIT (RFC 1939 section 6): a session cut before that
// deletes nothing.
func (c *Client) Dele(n int) error {
	_, err := c.cmd("DELE", "DELE "+strconv.Itoa(n))
	return err
}

// Quit ends the session (RFC 1939 section 6: this is when DELE takes effect).
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	c.conn.Close()
	return err
}

// Noop keeps the session alive.
func (c *Client) Noop() error {
	_, err := c.cmd("NOOP", "NOOP")
	return err
}

func (c *Client) cmd(name, line string) (string, error) {
	return c.send(name, line, line)
}

// cmdRedacted sends a command carrying a secret; errors never quote it.
func (c *Client) cmdRedacted(name, line string) (string, error) {
	return c.send(name, line, name+" ***")
}

func (c *Client) send(name, line, shown string) (string, error) {
	if c.open != nil {
		if err := c.open.drain(); err != nil {
			return "", err
		}
		c.open = nil
	}
	if strings.ContainsAny(line, "\r\n") {
		return "", fmt.Errorf("pop3: refusing to send %q: it contains a line break", shown)
	}
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return "", err
	}
	if err := c.bw.Flush(); err != nil {
		return "", err
	}
	c.debug("C: " + shown)
	return c.status(name)
}

func (c *Client) debug(line string) {
	if c.opts.Debug != nil {
		fmt.Fprintln(c.opts.Debug, line)
	}
}

// status reads a +OK or -ERR line and returns the text after the indicator.
func (c *Client) status(name string) (string, error) {
	line, err := c.readLine()
	if err == nil {
		c.debug("S: " + line)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("pop3 %s: %w", name, err)
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
		return strings.TrimSpace(line[3:]), nil
	case strings.HasPrefix(line, "-ERR"):
		return "", &Error{Cmd: name, Msg: strings.TrimSpace(line[4:])}
	}
	return "", fmt.Errorf("pop3 %s: unexpected reply %q", name, wire.Clip(line))
}

func (c *Client) readLine() (string, error) { return wire.ReadLine(c.br, maxLine) }

// multi sends a command whose +OK is followed by a dot-terminated listing.
func (c *Client) multi(name, line string) ([]string, error) {
	if _, err := c.cmd(name, line); err != nil {
		return nil, err
	}
	return c.listing(name)
}

// ListAll returns LIST and UIDL together; with PIPELINING both commands go
// out at once, saving a round trip. When the server refuses UIDL the error
// is ErrNoUIDL, with the LIST result.
func (c *Client) ListAll() ([]MsgInfo, map[int]string, error) {
	// STAT first: the count it gives bounds the listings, so that a server
	// that never ends one cannot fill memory.
	if !c.Has("PIPELINING") || c.open != nil {
		if n, _, err := c.Stat(); err == nil {
			c.maxLines = listingBound(n)
		}
		lines, err := c.multi("LIST", "LIST")
		if err != nil {
			return nil, nil, err
		}
		infos, bad := parseList(lines)
		c.Bad = append(c.Bad, bad...)
		uids, err := c.UIDL()
		return infos, uids, err
	}
	for _, cmd := range []string{"STAT", "LIST", "UIDL"} {
		c.debug("C: " + cmd)
	}
	if _, err := c.bw.WriteString("STAT\r\nLIST\r\nUIDL\r\n"); err != nil {
		return nil, nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	if n, _, err := parseStat(c.status("STAT")); err == nil {
		c.maxLines = listingBound(n)
	} else if _, ok := err.(*Error); !ok && !strings.Contains(err.Error(), "malformed") {
		return nil, nil, err // the connection, not the server's answer
	}
	var lines []string
	_, err := c.status("LIST")
	if err == nil {
		lines, err = c.listing("LIST")
	}
	if err != nil {
		return nil, nil, err // the session is out of step: the caller drops it
	}
	infos, bad := parseList(lines)
	c.Bad = append(c.Bad, bad...)
	_, err = c.status("UIDL")
	if err == nil {
		lines, err = c.listing("UIDL")
	}
	uids, err := parseUIDL(lines, err)
	if err != nil && !errors.Is(err, ErrNoUIDL) {
		return nil, nil, err
	}
	return infos, uids, err
}

// listingBound is how many lines a listing of a mailbox of n messages may
// have: some more than n, as a message may arrive between STAT and LIST.
func listingBound(n int) int { return n + n/10 + 1000 }

// defaultMaxLines bounds a listing when STAT did not say how many messages
// there are: a POP3 mailbox of a million messages is not one.
const defaultMaxLines = 1_000_000

// listing reads a dot-terminated listing after its +OK.
func (c *Client) listing(name string) ([]string, error) {
	br := bufio.NewReaderSize(newDotReader(c.br), maxLine)
	var out []string
	limit := c.maxLines
	if limit <= 0 {
		limit = defaultMaxLines
	}
	for {
		if len(out) > limit {
			return nil, fmt.Errorf("pop3 %s: the listing goes on past %d lines, more than the mailbox has messages: the server does not end it", name, limit)
		}
		l, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("pop3 %s: listing line longer than %d bytes", name, maxLine)
		}
		if s := strings.TrimRight(string(l), "\r\n"); s != "" {
			out = append(out, s)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("pop3 %s: %w", name, err)
		}
	}
}
