// Package imap is mailmove's IMAP destination: the migrate.Destination
// adapter built on go-imap v2.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailmove/mailmove/internal/wire"
	"github.com/mailmove/mailmove/migrate"
)

// TLSMode says how a connection is protected.
type TLSMode int

const (
	TLSImplicit TLSMode = iota // imaps, port 993
	TLSStartTLS                // STARTTLS, which must succeed
	TLSNone                    // only with the user's explicit consent
)

// Config says where and as whom to append.
type Config struct {
	Addr      string // host:port
	User      string
	Password  func() (string, error)
	TLS       TLSMode
	TLSConfig *tls.Config
	Timeout   time.Duration // silence after which a connection is given up; default 120 s
	ReadOnly  bool          // EXAMINE instead of SELECT (dry-run)
	Dialer    func(ctx context.Context, network, addr string) (net.Conn, error)
	// Debug, when set, receives the raw protocol both ways (go-imap's debug
	// output); it must be a migrate.Redactor.
	Debug io.Writer
	// UTF8 lets 8-bit header bytes go as they are to a server that offers
	// UTF8=ACCEPT (RFC 6855), over connections of mailmove's own; without
	// it they are encoded first.
	UTF8 bool
	// Mechanism is "xoauth2" or "oauthbearer" to sign in with a bearer
	// token from Token instead of a password. Token is asked again at every
	// login: a long migration outlives a one-hour token.
	Mechanism string
	Token     func() (string, error)

	// For BenchmarkAppend: pretend the server lacks these extensions.
	noMultiAppend, noLiteralPlus bool
}

// Destination appends to one IMAP account over one connection. Not safe for
// concurrent use. After a connection failure the next call reconnects.
type Destination struct {
	cfg      Config
	c        *imapclient.Client
	conn     *watchConn
	selected string
	boxes    map[string][]imapv2.MailboxAttr // from LIST, by name
	delim    rune
	ns       *migrate.Namespace // learnt once: it does not change between sessions
	reached  bool               // a session was opened once
	utf8     bool               // the server offers UTF8=ACCEPT
	app      *pipeConn          // appends when UTF8 is used: go-imap has no UTF8 data item
	rawList  bool               // go-imap cannot read this account's listing: listOwn reads it
	skipped  []string           // folders whose names could not be read, left alone
}

var _ migrate.Destination = (*Destination)(nil)

// New returns a destination; it connects on first use.
func New(cfg Config) *Destination {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 120 * time.Second
	}
	return &Destination{cfg: cfg}
}

// Describe implements migrate.Destination.
func (d *Destination) Describe() string {
	// As the user writes it: imap:// means STARTTLS, so a session
	// without TLS says so.
	switch d.cfg.TLS {
	case TLSStartTLS:
		return "imap://" + d.cfg.User + "@" + d.cfg.Addr
	case TLSNone:
		return "imap://" + d.cfg.User + "@" + d.cfg.Addr + "?tls=none"
	}
	return "imaps://" + d.cfg.User + "@" + d.cfg.Addr
}

func (d *Destination) drop() {
	if d.c != nil {
		d.c.Close()
	}
	d.c, d.conn, d.selected, d.boxes = nil, nil, "", nil
}

// Close implements migrate.Destination.
func (d *Destination) Close() error {
	if d.app != nil {
		d.app.logout()
		d.app = nil
	}
	if d.c == nil {
		return nil
	}
	d.conn.watch(context.Background(), 10*time.Second, func() error { return d.c.Logout().Wait() })
	err := d.c.Close()
	d.c = nil
	return err
}

func (d *Destination) connect(ctx context.Context) error {
	if d.c != nil {
		return nil
	}
	dial := d.cfg.Dialer
	if dial == nil {
		nd := &net.Dialer{Timeout: 30 * time.Second}
		dial = nd.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, min(d.cfg.Timeout, greetTimeout))
	raw, err := dial(dctx, "tcp", d.cfg.Addr)
	cancel()
	if err != nil {
		return d.unreachable(fmt.Errorf("connect to %s: %w", d.cfg.Addr, err))
	}
	first := &wire.FirstBytes{Conn: raw}
	conn := newWatchConn(first)
	opts := &imapclient.Options{TLSConfig: d.cfg.TLSConfig, DebugWriter: d.cfg.Debug}
	var c *imapclient.Client
	tlsDone := false
	// A server that does not greet within seconds will not.
	err = conn.watch(ctx, min(d.cfg.Timeout, greetTimeout), func() error {
		switch d.cfg.TLS {
		case TLSImplicit:
			tc := tls.Client(conn, d.cfg.TLSConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				return err
			}
			tlsDone = true
			first = &wire.FirstBytes{Conn: tc} // what the server says inside TLS
			c = imapclient.New(first, opts)
		case TLSStartTLS:
			var err error
			if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
				return err
			}
		default:
			c = imapclient.New(conn, opts)
		}
		return c.WaitGreeting()
	})
	if err != nil {
		raw.Close()
		var rh tls.RecordHeaderError
		if what := wire.Speaks(first.First); errors.As(err, &rh) || what != "" && what != "an IMAP server" {
			return &migrate.Fatal{Err: wrongServer(d.cfg.Addr, first.First, d.cfg.TLS == TLSImplicit && !tlsDone)}
		}
		err = fmt.Errorf("connect to %s: %w", d.cfg.Addr, err)
		if migrate.CertError(err) {
			return &migrate.Fatal{Err: err}
		}
		var stall *StallError
		if errors.As(err, &stall) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if d.cfg.TLS != TLSImplicit && len(first.First) == 0 {
				// Silence, or a hang-up, is what a TLS port gives a
				// client that does not begin with TLS.
				if perr := wire.ProbeTLS(ctx, dial, d.cfg.Addr, d.cfg.TLSConfig, probeTimeout); perr == nil || migrate.CertError(perr) {
					return &migrate.Fatal{Err: &migrate.WrongServer{Server: d.cfg.Addr, Want: "an IMAP server without TLS at first",
						Found: "a port that expects TLS from the start", Hint: "use imaps://USER@HOST:PORT for it"}}
				}
			}
			return d.unreachable(err)
		}
		return err
	}
	err = d.login(ctx, c, conn)
	if err != nil {
		c.Close()
		var ierr *imapv2.Error
		if errors.As(err, &ierr) {
			// Never retried in a loop: providers lock accounts after
			// repeated failures (see migrate.AuthError).
			return &migrate.Fatal{Err: &migrate.AuthError{Server: d.cfg.Addr, User: d.cfg.User, Reply: ierr.Text, Err: err,
				Transient: ierr.Code == imapv2.ResponseCodeUnavailable}}
		}
		return fmt.Errorf("log in to %s: %w", d.cfg.Addr, err)
	}
	if d.cfg.UTF8 && c.Caps().Has(imapv2.CapUTF8Accept) {
		// RFC 6855: this session, too, sees 8-bit headers as they are (a
		// server that downgrades them for other clients would make every
		// read-back differ) and names folders in UTF-8.
		conn.watch(ctx, d.cfg.Timeout, func() error { _, err := c.Enable(imapv2.CapUTF8Accept).Wait(); return err })
	}
	d.c, d.conn, d.reached = c, conn, true
	return nil
}

// greetTimeout bounds the wait for a connection and its greeting;
// probeTimeout the TLS handshake that tells a TLS port after a silence.
const (
	greetTimeout = 15 * time.Second
	probeTimeout = 3 * time.Second
)

// unreachable marks a failure to connect or to be greeted as a server not
// reached, which gets a few quick tries only, unless it was reached before
// in this run: then it is an outage, with the patient retries.
func (d *Destination) unreachable(err error) error {
	if d.reached {
		return err
	}
	return &migrate.Unreachable{Server: d.cfg.Addr, Err: err}
}

// wrongServer says what answered at addr instead of an IMAP server, and
// what to do about it.
func wrongServer(addr string, first []byte, withTLS bool) error {
	found := wire.Speaks(first)
	e := &migrate.WrongServer{Server: addr, Want: "an IMAP server", Found: found}
	switch {
	case found == "an IMAP server" && withTLS:
		e.Want, e.Found, e.Hint = "an IMAP server with TLS", "an IMAP port without TLS", "use imap://USER@HOST:PORT (STARTTLS) for this port, or the server's TLS port (993)"
	case found == "a TLS port":
		e.Found, e.Hint = "a port that expects TLS from the start", "use imaps://USER@HOST:PORT for it"
	case found == "a POP3 server":
		e.Hint = "a POP3 server is a source (--from pop3s://...); the destination needs the server's IMAP port (143, or 993 with TLS)"
	case found == "":
		e.Found = fmt.Sprintf("something that does not speak IMAP (it said %q)", wire.Clip(string(first)))
	default:
		e.Hint = "check the port: IMAP is 143 (993 with TLS)"
	}
	return e
}

// login signs in with the password, or with a bearer token. A refused
// token is fetched afresh and tried once more at once: it may have expired
// between fetching and using it.
func (d *Destination) login(ctx context.Context, c *imapclient.Client, conn *watchConn) error {
	if d.cfg.Mechanism == "" {
		pass, err := d.cfg.Password()
		if err != nil {
			return &migrate.Fatal{Err: err}
		}
		err = conn.watch(ctx, d.cfg.Timeout, func() error {
			if c.Caps().Has(imapv2.Cap("AUTH=PLAIN")) {
				return c.Authenticate(sasl.NewPlainClient("", d.cfg.User, pass))
			}
			return c.Login(d.cfg.User, pass).Wait()
		})
		var ierr *imapv2.Error
		if errors.As(err, &ierr) {
			// A server may quote the password it refused.
			ierr.Text = migrate.RedactText(ierr.Text, d.cfg.User, pass)
		}
		return err
	}
	host, port := hostPort(d.cfg.Addr)
	var err error
	for try := 0; try < 2; try++ {
		token, terr := d.cfg.Token()
		if terr != nil {
			return &migrate.Fatal{Err: fmt.Errorf("get an access token for %s: %w", d.cfg.User, terr)}
		}
		client, cerr := saslClient(d.cfg.Mechanism, d.cfg.User, token, host, port)
		if cerr != nil {
			return &migrate.Fatal{Err: cerr}
		}
		err = conn.watch(ctx, d.cfg.Timeout, func() error { return c.Authenticate(client) })
		var ierr *imapv2.Error
		if err == nil || !errors.As(err, &ierr) {
			return err
		}
		ierr.Text = migrate.RedactText(ierr.Text, d.cfg.User, token)
	}
	return err
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// do runs one operation on a connected client; a connection-level failure
// drops the connection so the next call starts afresh.
func (d *Destination) do(ctx context.Context, op func(c *imapclient.Client) error) error {
	if err := d.connect(ctx); err != nil {
		return err
	}
	c := d.c
	err := d.conn.watch(ctx, d.cfg.Timeout, func() error { return op(c) })
	var ierr *imapv2.Error
	if err != nil && !errors.As(err, &ierr) {
		d.drop()
	}
	return err
}

func (d *Destination) list(ctx context.Context) error {
	if d.boxes != nil {
		return nil
	}
	if d.rawList {
		return d.listOwn(ctx)
	}
	err := d.do(ctx, func(c *imapclient.Client) error {
		opts := &imapv2.ListOptions{ReturnSpecialUse: c.Caps().Has(imapv2.CapSpecialUse)}
		all, err := c.List("", "*", opts).Collect()
		if err != nil {
			return fmt.Errorf("list folders: %w", err)
		}
		d.boxes = make(map[string][]imapv2.MailboxAttr, len(all))
		for _, b := range all {
			d.boxes[b.Mailbox] = b.Attrs
			if b.Delim != 0 {
				d.delim = b.Delim
			}
		}
		d.utf8 = c.Caps().Has(imapv2.CapUTF8Accept)
		if d.ns != nil {
			return nil
		}
		ns := migrate.Namespace{Delim: d.delim}
		if c.Caps().Has(imapv2.CapNamespace) || c.Caps().Has(imapv2.CapIMAP4rev2) {
			data, err := c.Namespace().Wait()
			if err != nil {
				return fmt.Errorf("namespace: %w", err)
			}
			if len(data.Personal) > 0 {
				ns = migrate.Namespace{Prefix: data.Personal[0].Prefix, Delim: data.Personal[0].Delim}
			}
		}
		if ns.Delim == 0 {
			ns.Delim = d.delim
		}
		d.ns = &ns
		return nil
	})
	var ierr *imapv2.Error
	if err != nil && !errors.As(err, &ierr) && d.c == nil && d.reached {
		// go-imap dropped the connection in the listing: perhaps a folder
		// name it cannot decode. List on a connection of our own, which
		// leaves such folders out, from now on.
		if lerr := d.listOwn(ctx); lerr == nil {
			d.rawList = true
			return nil
		}
	}
	return err
}

// listOwn lists the folders with listRaw.
func (d *Destination) listOwn(ctx context.Context) error {
	boxes, ns, skipped, err := listRaw(ctx, d.cfg)
	if err != nil {
		return err
	}
	d.boxes = make(map[string][]imapv2.MailboxAttr, len(boxes))
	for _, b := range boxes {
		d.boxes[b.name] = b.attrs
		if b.delim != 0 {
			d.delim = b.delim
		}
	}
	d.skipped = skipped
	if ns == nil {
		ns = &migrate.Namespace{}
	}
	if ns.Delim == 0 {
		ns.Delim = d.delim
	}
	d.ns = ns
	return nil
}

// Account implements migrate.Destination: the first personal namespace
// (RFC 2342 section 5), which Cyrus and Courier make "INBOX." by default.
func (d *Destination) Account(ctx context.Context) (migrate.Account, error) {
	if err := d.list(ctx); err != nil {
		return migrate.Account{}, err
	}
	acct := migrate.Account{Namespace: *d.ns, UTF8: d.cfg.UTF8 && d.utf8}
	for _, s := range d.skipped {
		acct.Notes = append(acct.Notes, "a destination folder whose name is not valid modified UTF-7 (RFC 3501 section 5.1.3) is left alone: "+s)
	}
	return acct, nil
}

// folderErr sorts a refusal of CREATE or SELECT: a server's NO is about this
// folder (a name it does not allow, a folder it will not let us use) unless
// its response code says it may pass (RFC 5530).
func folderErr(name string, err error) error {
	var ierr *imapv2.Error
	if !errors.As(err, &ierr) {
		return err
	}
	switch ierr.Code {
	case imapv2.ResponseCodeUnavailable, imapv2.ResponseCodeInUse, imapv2.ResponseCodeServerBug, imapv2.ResponseCodeLimit:
		return err
	}
	return &migrate.FolderError{Folder: name, Err: err}
}

// Folders implements migrate.Destination.
func (d *Destination) Folders(ctx context.Context) ([]migrate.Folder, error) {
	if err := d.list(ctx); err != nil {
		return nil, err
	}
	out := make([]migrate.Folder, 0, len(d.boxes))
	for name, attrs := range d.boxes {
		f := migrate.Folder{Name: name, Delim: d.delim}
		for _, a := range attrs {
			f.Attrs = append(f.Attrs, string(a))
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b migrate.Folder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// canonical returns the server's spelling of name: INBOX is case-insensitive
// (RFC 3501 section 5.1).
func (d *Destination) canonical(name string) (string, bool) {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	attrs, ok := d.boxes[name]
	if ok {
		for _, a := range attrs {
			if strings.EqualFold(string(a), `\NonExistent`) || strings.EqualFold(string(a), `\Noselect`) {
				return name, false
			}
		}
	}
	return name, ok || name == "INBOX"
}

func (d *Destination) selectBox(c *imapclient.Client, name string) (*imapv2.SelectData, error) {
	data, err := c.Select(name, &imapv2.SelectOptions{ReadOnly: d.cfg.ReadOnly}).Wait()
	if err != nil {
		d.selected = ""
		return nil, fmt.Errorf("select %s: %w", name, err)
	}
	d.selected = name
	return data, nil
}

// Mailbox implements migrate.Destination.
func (d *Destination) Mailbox(ctx context.Context, name string, create bool) (migrate.MailboxInfo, error) {
	if err := d.list(ctx); err != nil {
		return migrate.MailboxInfo{}, err
	}
	name, exists := d.canonical(name)
	info := migrate.MailboxInfo{Name: name, Exists: exists}
	if !exists && !create {
		return info, nil
	}
	err := d.do(ctx, func(c *imapclient.Client) error {
		if !exists {
			err := c.Create(name, nil).Wait()
			var ierr *imapv2.Error
			if err != nil && !(errors.As(err, &ierr) && ierr.Code == imapv2.ResponseCodeAlreadyExists) {
				return folderErr(name, fmt.Errorf("create folder %s: %w", name, err))
			}
			c.Subscribe(name).Wait() // so mail clients show it; not essential
			d.boxes[name] = nil
			info.Exists, info.Created = true, err == nil
		}
		data, err := d.selectBox(c, name)
		if err != nil {
			return folderErr(name, err)
		}
		info.UIDValidity, info.UIDNext = data.UIDValidity, uint32(data.UIDNext)
		if limit, ok := c.Caps().AppendLimit(); ok && limit != nil {
			info.AppendLimit = int64(*limit)
		}
		info.Permanent = make([]string, 0, len(data.PermanentFlags))
		for _, f := range data.PermanentFlags {
			info.Permanent = append(info.Permanent, string(f))
		}
		if data.PermanentFlags == nil || d.cfg.ReadOnly {
			// EXAMINE always answers an empty PERMANENTFLAGS (nothing may
			// change in a read-only session): the dry-run cannot know more.
			info.Permanent, info.FlagsUnknown = nil, d.cfg.ReadOnly
		}
		return nil
	})
	return info, err
}

// Scan implements migrate.Destination.
func (d *Destination) Scan(ctx context.Context, folder string, from uint32, fn func(migrate.Existing) error) error {
	if err := d.list(ctx); err != nil {
		return err
	}
	folder, exists := d.canonical(folder)
	if !exists {
		return nil
	}
	section := &imapv2.FetchItemBodySection{
		Specifier:    imapv2.PartSpecifierHeader,
		HeaderFields: []string{"Message-ID", "Date", "From", "Subject"},
		Peek:         true,
	}
	return d.do(ctx, func(c *imapclient.Client) error {
		data, err := d.selectBox(c, folder)
		if err != nil || data.NumMessages == 0 {
			return err
		}
		opts := &imapv2.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imapv2.FetchItemBodySection{section}}
		var cmd *imapclient.FetchCommand
		if from > 1 {
			cmd = c.Fetch(imapv2.UIDSet{imapv2.UIDRange{Start: imapv2.UID(from), Stop: 0}}, opts)
		} else {
			cmd = c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, opts)
		}
		var ferr error
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			buf, err := msg.Collect()
			if err != nil {
				ferr = err
				break
			}
			if uint32(buf.UID) < from {
				continue // "from:*" names the last message when none is newer
			}
			if ferr == nil {
				ferr = fn(migrate.Existing{UID: uint32(buf.UID), Size: buf.RFC822Size, Header: buf.FindBodySection(section)})
			}
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("scan %s: %w", folder, err)
		}
		return ferr
	})
}

// FetchBody implements migrate.Destination.
func (d *Destination) FetchBody(ctx context.Context, folder string, uid uint32, w io.Writer) error {
	if err := d.list(ctx); err != nil {
		return err
	}
	folder, _ = d.canonical(folder)
	cw := &countWriter{w: w}
	err := d.do(ctx, func(c *imapclient.Client) error {
		// A message another connection appended may not be visible to
		// this session's view of the folder yet: when the FETCH finds
		// nothing, the folder is selected afresh and asked once more.
		for try := 0; ; try++ {
			if d.selected != folder || try > 0 {
				if _, err := d.selectBox(c, folder); err != nil {
					return err
				}
			}
			cmd := c.Fetch(imapv2.UIDSetNum(imapv2.UID(uid)), &imapv2.FetchOptions{
				BodySection: []*imapv2.FetchItemBodySection{{Peek: true}},
			})
			var werr error
			found := false
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				for item := msg.Next(); item != nil; item = msg.Next() {
					if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil && werr == nil {
						found = true
						_, werr = io.Copy(cw, b.Literal)
					}
				}
			}
			if err := cmd.Close(); err != nil {
				return fmt.Errorf("fetch %s UID %d: %w", folder, uid, err)
			}
			if found || werr != nil {
				return werr
			}
			if try == 1 {
				return fmt.Errorf("%s UID %d: %w", folder, uid, migrate.ErrNoMessage)
			}
		}
	})
	if decodeFailed(err) && cw.n == 0 {
		// go-imap could not read the reply (and dropped the connection):
		// read it on one of ours.
		return d.fetchOwn(ctx, folder, uid, w)
	}
	return err
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Present implements migrate.Destination: one SELECT (or EXAMINE) and one
// UID SEARCH, with ESEARCH's compact answer (RFC 4731) when the server has
// it.
func (d *Destination) Present(ctx context.Context, folder string, uids []uint32) (uint32, []uint32, error) {
	if err := d.list(ctx); err != nil {
		return 0, nil, err
	}
	folder, exists := d.canonical(folder)
	if !exists {
		return 0, uids, nil
	}
	var validity uint32
	var missing []uint32
	err := d.do(ctx, func(c *imapclient.Client) error {
		data, err := d.selectBox(c, folder)
		if err != nil {
			return folderErr(folder, err)
		}
		validity = data.UIDValidity
		var set imapv2.UIDSet
		for _, u := range uids {
			set.AddNum(imapv2.UID(u))
		}
		var opts *imapv2.SearchOptions
		if c.Caps().Has(imapv2.CapESearch) {
			opts = &imapv2.SearchOptions{ReturnAll: true}
		}
		res, err := c.UIDSearch(&imapv2.SearchCriteria{UID: []imapv2.UIDSet{set}}, opts).Wait()
		if err != nil {
			return fmt.Errorf("search %s: %w", folder, err)
		}
		here := make(map[imapv2.UID]bool, len(uids))
		for _, u := range res.AllUIDs() {
			here[u] = true
		}
		for _, u := range uids {
			if !here[imapv2.UID(u)] {
				missing = append(missing, u)
			}
		}
		return nil
	})
	return validity, missing, err
}

// Flags implements migrate.Destination with one UID FETCH (FLAGS).
func (d *Destination) Flags(ctx context.Context, folder string, uids []uint32) (map[uint32][]string, error) {
	if err := d.list(ctx); err != nil {
		return nil, err
	}
	folder, _ = d.canonical(folder)
	out := map[uint32][]string{}
	err := d.do(ctx, func(c *imapclient.Client) error {
		if d.selected != folder {
			if _, err := d.selectBox(c, folder); err != nil {
				return err
			}
		}
		var set imapv2.UIDSet
		for _, u := range uids {
			set.AddNum(imapv2.UID(u))
		}
		msgs, err := c.Fetch(set, &imapv2.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return fmt.Errorf("fetch flags in %s: %w", folder, err)
		}
		for _, m := range msgs {
			f := make([]string, len(m.Flags))
			for i, x := range m.Flags {
				f[i] = string(x)
			}
			out[uint32(m.UID)] = f
		}
		return nil
	})
	return out, err
}

// Remove implements migrate.Destination: UID STORE \Deleted and UID EXPUNGE
// (RFC 4315) of exactly these messages, and only when the folder's
// UIDVALIDITY is still uidValidity, so that no other message is touched.
func (d *Destination) Remove(ctx context.Context, folder string, uidValidity uint32, uids []uint32) error {
	if err := d.list(ctx); err != nil {
		return err
	}
	folder, _ = d.canonical(folder)
	return d.do(ctx, func(c *imapclient.Client) error {
		if !c.Caps().Has(imapv2.CapUIDPlus) {
			return &migrate.Fatal{Err: fmt.Errorf("%s has no UIDPLUS: removing only mailmove's messages is not possible there", d.cfg.Addr)}
		}
		data, err := d.selectBox(c, folder)
		if err != nil {
			return err
		}
		if data.UIDValidity != uidValidity {
			return &migrate.Fatal{Err: fmt.Errorf("%s was recreated since (UIDVALIDITY %d, recorded %d): its messages cannot be told apart safely", folder, data.UIDValidity, uidValidity)}
		}
		var set imapv2.UIDSet
		for _, u := range uids {
			set.AddNum(imapv2.UID(u))
		}
		if err := c.Store(set, &imapv2.StoreFlags{Op: imapv2.StoreFlagsAdd, Silent: true, Flags: []imapv2.Flag{imapv2.FlagDeleted}}, nil).Close(); err != nil {
			return fmt.Errorf("flag messages in %s: %w", folder, err)
		}
		if err := c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("expunge messages in %s: %w", folder, err)
		}
		return nil
	})
}

// Append implements migrate.Destination.
func (d *Destination) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	if d.cfg.UTF8 && d.utf8 && header8bit(m.Body) {
		return d.appendOwn(ctx, folder, m)
	}
	var out migrate.Appended
	flags := make([]imapv2.Flag, len(m.Flags))
	for i, f := range m.Flags {
		flags[i] = imapv2.Flag(f)
	}
	err := d.do(ctx, func(c *imapclient.Client) error {
		cmd := c.Append(folder, m.Body.Size(), &imapv2.AppendOptions{Flags: flags, Time: m.Date})
		if _, err := io.Copy(cmd, m.Body.Open()); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		out = migrate.Appended{UIDValidity: data.UIDValidity, UID: uint32(data.UID)}
		return nil
	})
	return out, classify(folder, err)
}

// appendOwn appends over a connection of mailmove's own, with UTF8=ACCEPT
// enabled, for a message whose 8-bit header bytes go as they are.
func (d *Destination) appendOwn(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	if d.app == nil {
		c, err := dialPipe(ctx, d.cfg)
		if err != nil {
			return migrate.Appended{}, err
		}
		d.app = c
	}
	closed := make(chan struct{})
	close(closed)
	res, broken := d.app.appendBatch(context.WithoutCancel(ctx), folder, []migrate.Outgoing{m}, closed)
	if broken {
		d.app.close()
		d.app = nil
	}
	return res[0].Appended, res[0].Err
}

// classify sorts a server's refusal of an APPEND: about this message only,
// about the whole account, or worth another try.
func classify(folder string, err error) error {
	var ierr *imapv2.Error
	if err == nil || !errors.As(err, &ierr) {
		return err
	}
	err = fmt.Errorf("append to %s: %w", folder, err)
	switch ierr.Code {
	case imapv2.ResponseCodeOverQuota:
		return &migrate.Fatal{Err: fmt.Errorf("%w: %w", migrate.ErrFull, err)}
	case imapv2.ResponseCodeNoPerm:
		return &migrate.Fatal{Err: err}
	case imapv2.ResponseCodeUnavailable, imapv2.ResponseCodeInUse,
		imapv2.ResponseCodeServerBug, imapv2.ResponseCodeTryCreate:
		return err
	}
	if passing(ierr.Text) {
		return err
	}
	return &migrate.Permanent{Err: err, Uncoded: ierr.Code == ""}
}

// passing says whether the words of an APPEND's refusal say it will pass:
// a rate limit or throttling, not this message. A [LIMIT] (RFC 5530) is
// otherwise about the message (Dovecot's quota_max_mail_size: "Mail size is
// larger than the maximum size allowed"): trying it again cannot help, and
// the others must go on.
func passing(text string) bool {
	t := strings.ToLower(text)
	for _, w := range []string{"throttl", "rate limit", "too many", "try again", "later", "temporar"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}
