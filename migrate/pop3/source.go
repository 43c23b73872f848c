package pop3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

// SourceConfig says where and as whom to read a POP3 mailbox.
type SourceConfig struct {
	Addr     string // host:port
	User     string
	Password func() (string, error) // asked once per login, never stored here
	Options  Options
	// Flags are given to every message: POP3 keeps none of its own. mailmove
	// passes `\Seen`: mail left on a POP3 server has been downloaded already.
	Flags []string
	// Mechanism "xoauth2" or "oauthbearer" signs in with a bearer token
	// from Token, asked again at every login.
	Mechanism string
	Token     func() (string, error)
	// MaxMessage bounds one message; 0 means DefaultMaxMessage.
	MaxMessage int64
}

// Source reads a POP3 mailbox. It never deletes anything.
type Source struct {
	cfg       SourceConfig
	c         *Client
	notes     []string // of the session
	listNotes []string // of the latest listing
	// numOf maps UIDLs to this session's message numbers after a reconnect
	// (where numbers may shift), so the right message is found again; nil
	// in the session that listed the messages.
	hasUIDL bool
	numOf   map[string]int

	utf8Refused bool
	reached     bool // a session was opened once
}

var _ migrate.Source = (*Source)(nil)

// NewSource returns a source; it connects on first use.
func NewSource(cfg SourceConfig) *Source { return &Source{cfg: cfg} }

// Describe implements migrate.Source.
func (s *Source) Describe() string {
	// As the user writes it: pop3:// means STLS, so a session without
	// TLS says so.
	switch s.cfg.Options.TLS {
	case TLSStartTLS:
		return "pop3://" + s.cfg.User + "@" + s.cfg.Addr
	case TLSNone:
		return "pop3://" + s.cfg.User + "@" + s.cfg.Addr + "?tls=none"
	}
	return "pop3s://" + s.cfg.User + "@" + s.cfg.Addr
}

// Notes reports what the user should know about this mailbox.
func (s *Source) Notes() []string {
	var out []string
	for _, n := range append(slices.Clone(s.notes), s.listNotes...) {
		if !slices.Contains(out, n) { // a List tried again says it again
			out = append(out, n)
		}
	}
	return out
}

func (s *Source) connect(ctx context.Context) error {
	if s.c != nil {
		return nil
	}
	c, err := Dial(ctx, s.cfg.Addr, s.cfg.Options)
	if err != nil {
		var un *migrate.Unreachable
		if s.reached && errors.As(err, &un) {
			err = un.Err // reached before: an outage, which gets the patient retries
		}
		return classify(fmt.Errorf("connect to %s: %w", s.cfg.Addr, err))
	}
	if err := s.login(c); err != nil {
		c.Close()
		if errors.Is(err, ErrAuth) {
			// Never retried in a loop: ISPs lock accounts after repeated
			// failures (see migrate.AuthError).
			reply := err.Error() // the client redacted the password from it
			var perr *Error
			if errors.As(err, &perr) {
				reply = perr.Msg
			}
			up := strings.ToUpper(reply)
			return &migrate.Fatal{Err: &migrate.AuthError{Server: s.cfg.Addr, User: s.cfg.User, Reply: reply, Err: err,
				Transient: strings.Contains(up, "[SYS/TEMP]") || strings.Contains(up, "[IN-USE]")}}
		}
		return err
	}
	s.c, s.reached = c, true
	return nil
}

// login signs in with the password or a bearer token; a refused token is
// fetched afresh and tried once more (it may have just expired).
func (s *Source) login(c *Client) error {
	if c.Has("UTF8") {
		// The messages exactly as stored, not 7-bit stand-ins. A server
		// that refuses is noted once: what it serves is checked anyway.
		if err := c.UTF8(); err != nil && !s.utf8Refused {
			s.utf8Refused = true
			s.notes = append(s.notes, fmt.Sprintf("the POP3 server offers UTF8 (RFC 6856) but refused it (%v): messages with 8-bit headers may arrive as stand-ins", err))
		}
	}
	if s.cfg.Mechanism == "" {
		pass, err := s.cfg.Password()
		if err != nil {
			return &migrate.Fatal{Err: err}
		}
		return c.Auth(s.cfg.User, pass)
	}
	host, port, _ := net.SplitHostPort(s.cfg.Addr)
	p, _ := strconv.Atoi(port)
	var err error
	for try := 0; try < 2; try++ {
		token, terr := s.cfg.Token()
		if terr != nil {
			return &migrate.Fatal{Err: fmt.Errorf("get an access token for %s: %w", s.cfg.User, terr)}
		}
		if err = c.AuthBearer(s.cfg.Mechanism, s.cfg.User, token, host, p); !errors.Is(err, ErrAuth) {
			return err
		}
	}
	return err
}

// classify marks certificate failures fatal: retrying cannot fix them.
func classify(err error) error {
	if migrate.CertError(err) {
		return &migrate.Fatal{Err: err}
	}
	return err
}

// closeOnCancel closes the connection when ctx ends, to unblock a read in
// progress; the session's owner then sees the error and drops it. It must
// not touch s itself: it runs on another goroutine.
func (s *Source) closeOnCancel(ctx context.Context) func() bool {
	c := s.c
	return context.AfterFunc(ctx, func() { c.Close() })
}

// drop abandons the session after an error so the next call reconnects.
func (s *Source) drop() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// List implements migrate.Source.
func (s *Source) List(ctx context.Context) ([]migrate.Entry, error) {
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	s.listNotes = nil // of the latest listing only
	stop := s.closeOnCancel(ctx)
	defer stop()
	infos, uids, err := s.c.ListAll()
	if errors.Is(err, ErrNoUIDL) {
		s.listNotes = append(s.listNotes, "the POP3 server has no UIDL: messages are recognised by their content, so every run reads every message")
		uids, err = nil, nil
	}
	if err != nil {
		s.drop()
		return nil, err
	}
	// In this session the listing's numbers are the numbers: no map until a
	// reconnection (100,000 UIDLs would cost megabytes for nothing).
	s.hasUIDL, s.numOf = uids != nil, nil
	s.listNotes = append(s.listNotes, s.c.Bad...)
	s.c.Bad = nil
	// Every message either listing knows of: a server whose LIST and UIDL
	// disagree has its extra UIDL messages read too (their size unknown).
	listed := make(map[int]bool, len(infos))
	for _, in := range infos {
		listed[in.Num] = true
	}
	var extra []int
	for n := range uids {
		if !listed[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		s.listNotes = append(s.listNotes, fmt.Sprintf("the POP3 server's LIST and UIDL disagree: UIDL names %d message(s) LIST leaves out (%v): they are read too", len(extra), clipNums(extra)))
		for _, n := range extra {
			infos = append(infos, MsgInfo{Num: n})
		}
		slices.SortFunc(infos, func(a, b MsgInfo) int { return a.Num - b.Num })
	}
	noUID := 0
	for _, in := range infos {
		if _, ok := uids[in.Num]; !ok {
			noUID++
		}
	}
	if uids != nil && noUID > 0 {
		s.listNotes = append(s.listNotes, fmt.Sprintf("UIDL names no unique id for %d listed message(s): they are recognised by their content", noUID))
	}
	// A UIDL given to several messages names none of them: each is
	// recognised by its content. Naming the first by it would let the
	// second inherit its record once the first left the server (popa3d
	// makes UIDLs of the headers, and identical headers happen).
	shared := map[string]int{}
	for _, in := range infos {
		if u, ok := uids[in.Num]; ok {
			shared[u]++
		}
	}
	var sharedUIDLs []string
	sharedMsgs := 0
	for u, n := range shared {
		if n > 1 {
			sharedUIDLs = append(sharedUIDLs, fmt.Sprintf("%q (%d messages)", u, n))
			sharedMsgs += n
		}
	}
	if len(sharedUIDLs) > 0 {
		slices.Sort(sharedUIDLs)
		if len(sharedUIDLs) > 5 {
			sharedUIDLs = append(sharedUIDLs[:5], fmt.Sprintf("and %d more", len(sharedUIDLs)-5))
		}
		s.listNotes = append(s.listNotes, fmt.Sprintf("the POP3 server gives the same UIDL to several messages, %d in all (%s): they are recognised by their content",
			sharedMsgs, strings.Join(sharedUIDLs, ", ")))
	}
	out := make([]migrate.Entry, 0, len(infos))
	for _, in := range infos {
		e := migrate.Entry{Num: in.Num, Size: in.Size}
		if u, ok := uids[in.Num]; ok && shared[u] == 1 {
			e.ID = "uidl:" + u
		}
		out = append(out, e)
	}
	return out, nil
}

// clipNums shows at most ten numbers.
func clipNums(n []int) string {
	if len(n) > 10 {
		return fmt.Sprintf("%v and %d more", n[:10], len(n)-10)
	}
	return fmt.Sprint(n)
}

// session connects when needed; message numbers belong to a session, so a
// new one maps the UIDLs again.
func (s *Source) session(ctx context.Context) error {
	reconnected := s.c == nil
	if err := s.connect(ctx); err != nil {
		return err
	}
	if reconnected && s.hasUIDL {
		return s.mapUIDs()
	}
	return nil
}

// mapUIDs learns this session's message numbers for the UIDLs.
func (s *Source) mapUIDs() error {
	uids, err := s.c.UIDL()
	if err != nil {
		s.drop()
		return err
	}
	s.hasUIDL, s.numOf = true, make(map[string]int, len(uids))
	for n, u := range uids {
		s.numOf[u] = n
	}
	return nil
}

// number is the entry's message number in this session; false when the
// message has gone from the server since it was listed.
func (s *Source) number(e migrate.Entry) (int, bool) {
	if len(e.ID) > 5 && e.ID[:5] == "uidl:" {
		if s.numOf == nil {
			return e.Num, true // the session that listed it
		}
		n, ok := s.numOf[e.ID[5:]]
		return n, ok
	}
	return e.Num, true
}

// Headers implements migrate.HeaderSource with TOP, pipelined when the
// server allows. A message gone from the server, or one whose TOP is
// refused, is left out: Retrieve reports it.
func (s *Source) Headers(ctx context.Context, entries []migrate.Entry, fn func(migrate.Entry, []byte) error) error {
	if err := s.session(ctx); err != nil {
		return err
	}
	stop := s.closeOnCancel(ctx)
	defer stop()
	var nums []int
	var which []migrate.Entry
	for _, e := range entries {
		if n, ok := s.number(e); ok {
			nums, which = append(nums, n), append(which, e)
		}
	}
	err := s.c.TopHeaders(nums, func(i int, h []byte, err error) error {
		if err != nil {
			return nil
		}
		return fn(which[i], h)
	})
	if err != nil {
		s.drop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read headers: %w", err)
	}
	return nil
}

// Delete implements migrate.Deleter: it deletes entries from the server in
// sessions of at most batch messages, each committed by QUIT, and calls
// committed with the entries of each batch the server confirmed. A session
// cut before QUIT's +OK deletes nothing (RFC 1939 section 6); if QUIT's
// reply alone is lost, the messages may be gone without being reported:
// they were verified at the destination, so nothing is lost either way.
func (s *Source) Delete(ctx context.Context, entries []migrate.Entry, batch int, committed func([]migrate.Entry) error) error {
	if batch <= 0 {
		batch = 50
	}
	for len(entries) > 0 {
		n := min(batch, len(entries))
		if err := s.session(ctx); err != nil {
			return err
		}
		if !s.hasUIDL {
			// The session was opened for deleting only: map the UIDLs.
			if err := s.mapUIDs(); err != nil {
				return err
			}
		}
		var marked []migrate.Entry
		for _, e := range entries[:n] {
			num, ok := s.number(e)
			if !ok {
				continue // gone already
			}
			if err := s.c.Dele(num); err != nil {
				s.drop()
				return fmt.Errorf("mark message %d for deletion: %w (nothing of this batch was deleted)", num, err)
			}
			marked = append(marked, e)
		}
		err := s.c.Quit()
		s.c = nil // the next batch is a new session, with new numbers
		if err != nil {
			return fmt.Errorf("commit deletions: %w (the server may not have deleted this batch)", err)
		}
		if err := committed(marked); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// retrWindow is how many RETRs may be in flight. The replies queue in the
// server's socket, not in memory here: the window costs nothing but bytes
// the server has ready.
const retrWindow = 512

// Retrieve implements migrate.Source.
func (s *Source) Retrieve(ctx context.Context, entries []migrate.Entry, fn func(*migrate.Incoming) error) error {
	if err := s.session(ctx); err != nil {
		return err
	}
	stop := s.closeOnCancel(ctx)
	defer stop()
	// With PIPELINING, RETRs go out ahead of the replies, a window at a
	// time, so that the link never waits a round trip between messages.
	window := 1
	if s.c.Has("PIPELINING") {
		window = retrWindow
	}
	sent := 0 // entries whose RETR is sent (or that need none)
	for i, e := range entries {
		if sent < len(entries) && sent <= i+window-window/8 {
			for ; sent < len(entries) && sent < i+window; sent++ {
				if n, ok := s.number(entries[sent]); ok && entries[sent].Size <= s.maxMessage() {
					if err := s.c.QueueRetr(n); err != nil {
						s.drop()
						return err
					}
				}
			}
			if err := s.c.Flush(); err != nil {
				s.drop()
				return fmt.Errorf("retrieve: %w", err)
			}
		}
		if max := s.maxMessage(); e.Size > max {
			// Not downloaded at all: a night's bandwidth for nothing.
			err := &migrate.Permanent{Err: fmt.Errorf("the POP3 server announces %d bytes for this message, more than the %d allowed: "+
				"not copied (it is still on the server; --max-message-size allows larger messages)", e.Size, max)}
			if err := fn(&migrate.Incoming{Entry: e, Err: err}); err != nil {
				return err
			}
			continue
		}
		num, ok := s.number(e)
		if !ok {
			// Gone since it was listed (another client took it): said, not skipped.
			err := &migrate.Permanent{Err: fmt.Errorf("message %s is no longer on the POP3 server (another client removed it)", e.ID)}
			if err := fn(&migrate.Incoming{Entry: e, Err: err}); err != nil {
				return err
			}
			continue
		}
		r, err := s.c.ReadRetr()
		if err != nil {
			var perr *Error
			if errors.As(err, &perr) {
				// The server refused this one message; the session is still
				// in step. It stays on the server and is tried next run.
				err = &migrate.Permanent{Err: fmt.Errorf("the POP3 server would not send message %d: %w", num, err)}
				if err := fn(&migrate.Incoming{Entry: e, Err: err}); err != nil {
					return err
				}
				continue
			}
			s.drop()
			return fmt.Errorf("retrieve message %d: %w", num, err)
		}
		b := s.bound(r, e.Size)
		in := &migrate.Incoming{Entry: e, R: b, Flags: s.cfg.Flags}
		if err := fn(in); err != nil {
			s.drop() // the body may be half read: the session is out of step
			return err
		}
		if b.exceeded {
			// The rest of this message may never end: a new session for
			// the next ones.
			s.drop()
			return migrate.ErrReconnect
		}
		if err := s.c.open.drain(); err != nil {
			s.drop()
			return err
		}
	}
	return nil
}

// DefaultMaxMessage is the largest message a POP3 server may send unless
// the user allows more: no mailbox provider accepts anything near it.
const DefaultMaxMessage = 1 << 30

// minRate is the slowest average a message may arrive at: an honest
// transfer over a poor line is faster, a server trickling a line a second
// to keep the idle timeout at bay is not.
const minRate = 8 << 10 // bytes per second

func (s *Source) maxMessage() int64 {
	if s.cfg.MaxMessage > 0 {
		return s.cfg.MaxMessage
	}
	return DefaultMaxMessage
}

// bound limits a message to what its announced size makes plausible (twice
// it and a megabyte, as servers only approximate; at most MaxMessage) and
// to the time twice that size takes at minRate, after the idle timeout
// twice.
func (s *Source) bound(r io.Reader, announced int64) *boundedReader {
	limit := s.maxMessage()
	if announced > 0 {
		limit = min(limit, 2*announced+1<<20)
	}
	timeout := s.cfg.Options.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	took := 2*timeout + time.Duration((2*max(announced, 0)+16<<10)/minRate)*time.Second
	return &boundedReader{r: r, left: limit, limit: limit, announced: announced, deadline: time.Now().Add(took), took: took}
}

// boundedReader ends a message that goes past its bounds with a
// *migrate.Permanent error: that message fails, the others go on.
type boundedReader struct {
	r                      io.Reader
	left, limit, announced int64
	deadline               time.Time
	took                   time.Duration
	exceeded               bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.exceeded {
		return 0, b.err()
	}
	if time.Now().After(b.deadline) {
		b.exceeded = true
		return 0, &migrate.Permanent{Err: fmt.Errorf("the POP3 server took more than %s to send a message it announced as %d bytes: not copied (it is still on the server)", b.took.Round(time.Second), b.announced)}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		b.exceeded = true
		return int(b.left), b.err()
	}
	b.left -= int64(n)
	return n, err
}

func (b *boundedReader) err() error {
	return &migrate.Permanent{Err: fmt.Errorf("the POP3 server sent more than %d bytes for a message it announced as %d bytes: "+
		"not copied (it is still on the server; --max-message-size allows larger messages)", b.limit, b.announced)}
}

// Close implements migrate.Source: it ends the session with QUIT.
func (s *Source) Close() error {
	if s.c == nil {
		return nil
	}
	err := s.c.Quit()
	s.c = nil
	return err
}
