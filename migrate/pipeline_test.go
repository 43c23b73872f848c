package migrate_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/internal/testcert"
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/imap"
	"github.com/mailmove/mailmove/migrate/pop3"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
	"github.com/mailmove/mailmove/mime"
	"github.com/mailmove/mailmove/store"
)

type env struct {
	imapAddr  string
	clientTLS *tls.Config
	pop       *pop3test.Server
	src       *pop3.Source
	dst       *imap.Destination
	state     *store.Store
	dir       string
}

func newEnv(t testing.TB, msgs []string, hook ...func(net.Conn, int, string) bool) *env {
	t.Helper()
	certs, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, _ := certs.TLSConfig()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.CAPEM)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	pop := &pop3test.Server{User: "u", Pass: "p", TLS: serverTLS}
	if len(hook) > 0 {
		pop.Hook = hook[0]
	}
	for i, m := range msgs {
		pop.Messages = append(pop.Messages, pop3test.Message{UID: fmt.Sprintf("m%d", i), Data: []byte(m)})
	}
	popAddr, err := pop.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pop.Close)

	imapAddr, stop, err := memimap.Serve(serverTLS, "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pop: pop, dir: dir, state: st, imapAddr: imapAddr, clientTLS: clientTLS,
		src: pop3.NewSource(pop3.SourceConfig{Addr: popAddr, User: "u", Password: func() (string, error) { return "p", nil },
			Options: pop3.Options{TLSConfig: clientTLS, Timeout: 5 * time.Second}, Flags: []string{`\Seen`}}),
		dst: imap.New(imap.Config{Addr: imapAddr, User: "u", Password: func() (string, error) { return "p", nil },
			TLSConfig: clientTLS, Timeout: 5 * time.Second}),
	}
	t.Cleanup(func() { e.src.Close(); e.dst.Close(); st.Close() })
	return e
}

func (e *env) run(t testing.TB, d migrate.Destination) migrate.Summary {
	t.Helper()
	if d == nil {
		d = e.dst
	}
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{
		Backoff: 10 * time.Millisecond, Keep: migrate.DirKeeper{Dir: filepath.Join(e.dir, "kept")}, Run: "test",
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return sum
}

func (e *env) inbox(t *testing.T) []string {
	t.Helper()
	var uids []uint32
	err := e.dst.Scan(context.Background(), "INBOX", 0, func(x migrate.Existing) error {
		uids = append(uids, x.UID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, uid := range uids {
		var b strings.Builder
		if err := e.dst.FetchBody(context.Background(), "INBOX", uid, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.String())
	}
	return out
}

func msg(i int, mid bool) string {
	h := fmt.Sprintf("From: a@b\r\nSubject: message %d\r\nDate: Mon, 1 Jan 2024 10:%02d:00 +0000\r\n", i, i%60)
	if mid {
		h += fmt.Sprintf("Message-ID: <%d@test>\r\n", i)
	}
	return h + "\r\nbody " + strings.Repeat("x", i*100) + "\r\n"
}

func TestPendingReconciled(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, false), msg(3, true)}
	e := newEnv(t, msgs)
	// A crash between APPEND and its record: message 1 is at the destination
	// and pending in the state; message 3 is pending but never arrived.
	body := migrate.BodyFromBytes([]byte(msgs[0]))
	if _, err := e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: body}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"uidl:m0", "uidl:m2"} {
		m := []byte(msgs[i*2])
		e.state.Put(migrate.Record{ID: id, State: migrate.Pending, Folder: "INBOX", Size: int64(len(m)),
			Fingerprint: fpOf(m), Key: keyOf(m), MessageID: fmt.Sprintf("%d@test", i*2+1)})
	}
	sum := e.run(t, nil)
	if sum.Reconciled != 1 || sum.Copied != 2 || sum.Present != 0 {
		t.Fatalf("summary %+v", sum)
	}
	got := e.inbox(t)
	slices.Sort(got)
	want := slices.Clone(msgs)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("destination holds %d messages, want each of %d once", len(got), len(msgs))
	}
}

// lostReply appends for real, then reports a dropped connection: the
// ambiguous case where the server stored the message but its OK was lost.
type lostReply struct {
	migrate.Destination
	times int
}

func (l *lostReply) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	a, err := l.Destination.Append(ctx, folder, m)
	if err == nil && l.times > 0 {
		l.times--
		return migrate.Appended{}, errors.New("read tcp: connection reset by peer")
	}
	return a, err
}

func TestLostAppendReplyNotDoubled(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, false), msg(3, true)}
	e := newEnv(t, msgs)
	sum := e.run(t, &lostReply{Destination: e.dst, times: 2})
	if sum.Copied != 3 {
		t.Fatalf("summary %+v", sum)
	}
	if got := e.inbox(t); len(got) != 3 {
		t.Fatalf("destination holds %d messages, want 3", len(got))
	}
}

// refuser refuses messages whose subject says so, as a server refuses a
// message it cannot parse.
type refuser struct{ migrate.Destination }

func (r refuser) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	b, _ := io.ReadAll(m.Body.Open())
	if strings.Contains(string(b), "message 2") {
		return migrate.Appended{}, &migrate.Permanent{Err: errors.New("NO [PARSE] cannot parse message")}
	}
	return r.Destination.Append(ctx, folder, m)
}

func TestRefusedMessageKept(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, true), msg(3, true)}
	e := newEnv(t, msgs)
	sum := e.run(t, refuser{e.dst})
	if sum.Copied != 2 || sum.Failed != 1 {
		t.Fatalf("summary %+v", sum)
	}
	kept, err := os.ReadFile(filepath.Join(e.dir, "kept", "uidl_m1.eml"))
	if err != nil || string(kept) != msgs[1] {
		t.Fatalf("refused message not kept whole: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(e.dir, "kept")); st.Mode().Perm() != 0o700 {
		t.Fatalf("kept dir mode %v", st.Mode())
	}
	rec, _, _ := e.state.Get("uidl:m1")
	if rec.State != migrate.Failed || !strings.Contains(rec.Reason, "PARSE") {
		t.Fatalf("record %+v", rec)
	}
	// The next run tries it again (the user may have fixed the cause).
	sum = e.run(t, nil)
	if sum.Copied != 1 || sum.AlreadyDone != 2 {
		t.Fatalf("second run %+v", sum)
	}
}

func TestDuplicateAndPresent(t *testing.T) {
	a, b := msg(1, true), msg(2, false)
	// The same message twice in the mailbox, once with LF endings and a
	// client's Status header: one content.
	lf := strings.ReplaceAll("Status: RO\r\n"+a, "\r\n", "\n")
	e := newEnv(t, []string{a, lf, b})
	// b is already at the destination, put there by another tool.
	e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes([]byte(b))})
	sum := e.run(t, nil)
	if sum.Copied != 1 || sum.Duplicates != 1 || sum.Present != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if got := e.inbox(t); len(got) != 2 {
		t.Fatalf("destination holds %d, want 2", len(got))
	}
}

func TestSanitizeFlags(t *testing.T) {
	all := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `\*`}
	cases := []struct {
		in, perm, kept, dropped []string
	}{
		{[]string{`\seen`, `\Recent`, `$Junk`, `bad word`, `(x`, `\Seen`}, all, []string{`\Seen`, `$Junk`}, []string{`\Recent`, `bad word`, `(x`}},
		{[]string{`\Seen`, `$Junk`}, []string{`\Seen`}, []string{`\Seen`}, []string{`$Junk`}},
		{[]string{`\Flagged`, `$Forwarded`}, nil, []string{`\Flagged`}, []string{`$Forwarded`}},
		{[]string{`$label1`, `\Bogus`}, []string{`\*`}, []string{`$label1`}, []string{`\Bogus`}},
	}
	for _, c := range cases {
		kept, dropped := migrate.SanitizeFlags(c.in, c.perm)
		if !slices.Equal(kept, c.kept) || !slices.Equal(dropped, c.dropped) {
			t.Errorf("%v with %v: kept %v dropped %v; want %v %v", c.in, c.perm, kept, dropped, c.kept, c.dropped)
		}
	}
}

// TestResumeAfterVanishedMessage: a message disappears from the POP3 server
// between two sessions, and the connection drops again later. The vanished
// message is reported, not skipped in silence, and no message is processed
// twice when the run resumes.
func TestResumeAfterVanishedMessage(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, true), msg(3, true), msg(4, true)}
	// Message numbers 1-4 carry UIDLs m0-m3. From the second session on, m1
	// is gone. Session 1 drops during RETR 2, session 2 during RETR 4.
	e := newEnv(t, msgs, func(conn net.Conn, session int, cmd string) bool {
		switch {
		case session >= 2 && cmd == "UIDL":
			fmt.Fprint(conn, "+OK\r\n1 m0\r\n3 m2\r\n4 m3\r\n.\r\n")
			return true
		case session == 1 && cmd == "RETR 2", session == 2 && cmd == "RETR 4":
			fmt.Fprint(conn, "+OK\r\nSubject: cut")
			conn.Close()
			return true
		}
		return false
	})
	sum := e.run(t, nil)
	if sum.Copied != 3 || sum.Failed != 1 || sum.Present != 0 || sum.Duplicates != 0 {
		t.Fatalf("summary %+v: want 3 copied, 1 failed, nothing seen twice", sum)
	}
	rec, _, _ := e.state.Get("uidl:m1")
	if rec.State != migrate.Failed || !strings.Contains(rec.Reason, "no longer on the POP3 server") {
		t.Fatalf("vanished message record %+v", rec)
	}
	if got := e.inbox(t); len(got) != 3 {
		t.Fatalf("destination holds %d, want 3", len(got))
	}
}

// cyrus refuses 8-bit header bytes with Cyrus's words, and a message whose
// subject says "always" whatever it holds.
type cyrus struct {
	migrate.Destination
	refusals *int
	utf8     bool
}

func (c cyrus) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	b, _ := io.ReadAll(m.Body.Open())
	head := b[:mime.HeaderEnd(b)]
	for _, x := range head {
		if x >= 0x80 {
			*c.refusals++
			return migrate.Appended{}, &migrate.Permanent{Err: errors.New("NO Message contains non-ASCII characters in headers")}
		}
	}
	if strings.Contains(string(head), "always") {
		*c.refusals++
		return migrate.Appended{}, &migrate.Permanent{Err: errors.New("NO [TOOBIG] Message too big")}
	}
	return c.Destination.Append(ctx, folder, m)
}

// Account says the server takes 8-bit headers (UTF8=ACCEPT) when c.utf8 is
// set, so that they are sent as they are and refused.
func (c cyrus) Account(ctx context.Context) (migrate.Account, error) {
	a, err := c.Destination.Account(ctx)
	a.UTF8 = c.utf8
	return a, err
}

// TestRefusalMappedToRepair: a refusal is mapped to the repair it asks for,
// tried once; the original is archived; what is refused again goes to the
// quarantine with its reason.
func TestRefusalMappedToRepair(t *testing.T) {
	accented := "From: Rémi <remi@example.org>\r\nSubject: Réunion\r\nMessage-ID: <r@x>\r\n\r\nbody\r\n"
	big := "From: a@example.org\r\nSubject: always refused\r\nMessage-ID: <big@x>\r\n\r\nbody\r\n"
	e := newEnv(t, []string{accented, big})
	refusals := 0
	rec := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, cyrus{e.dst, &refusals, true}, e.state, migrate.Options{
		Backoff: time.Millisecond, Observer: rec,
		Keep:    migrate.DirKeeper{Dir: filepath.Join(e.dir, "quarantine")},
		Archive: migrate.DirKeeper{Dir: filepath.Join(e.dir, "originals")},
	})
	if err != nil || sum.Copied != 1 || sum.Failed != 1 || refusals != 2 {
		t.Fatalf("%+v %v refusals=%d", sum, err, refusals)
	}
	ev := rec.events[0]
	if len(ev.Repairs) != 1 || ev.Repairs[0].Code != "header-8bit" || !strings.Contains(ev.Repairs[0].Text, "non-ASCII characters") {
		t.Errorf("repairs %+v", ev.Repairs)
	}
	orig, err := os.ReadFile(ev.Original)
	if err != nil || string(orig) != accented {
		t.Errorf("original not archived whole (%v): %q", err, orig)
	}
	got := e.inbox(t)
	if len(got) != 1 || !strings.Contains(got[0], "Subject: =?utf-8?q?R=C3=A9union?=") || !strings.HasPrefix(got[0], mime.RepairHeader+": header-8bit") {
		t.Errorf("stored %q", got)
	}
	if sum.Repairs["header-8bit"] != 1 {
		t.Errorf("summary repairs %v", sum.Repairs)
	}
	q, err := os.ReadFile(filepath.Join(e.dir, "quarantine", "uidl_m1.eml"))
	if err != nil || string(q) != big {
		t.Errorf("refused message not in the quarantine whole: %v", err)
	}
}

// TestHeader8bitUpFront: a server that does not say it takes 8-bit headers
// (no UTF8=ACCEPT) gets them encoded before they are sent, so it never has
// the chance to refuse them, or, as Cyrus does, to store an X for each byte.
func TestHeader8bitUpFront(t *testing.T) {
	accented := "From: Rémi <remi@example.org>\r\nSubject: Réunion\r\nMessage-ID: <r@x>\r\n\r\ncorps accentué\r\n"
	e := newEnv(t, []string{accented})
	refusals := 0
	rec := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, cyrus{e.dst, &refusals, false}, e.state, migrate.Options{
		Observer: rec, Archive: migrate.DirKeeper{Dir: filepath.Join(e.dir, "originals")},
	})
	if err != nil || sum.Copied != 1 || refusals != 0 || sum.Repairs["header-8bit"] != 1 {
		t.Fatalf("%+v %v refusals=%d", sum, err, refusals)
	}
	if ev := rec.events[0]; len(ev.Repairs) != 1 || strings.Contains(ev.Repairs[0].Text, "refused") {
		t.Errorf("repairs %+v", ev.Repairs)
	}
	if got := e.inbox(t); len(got) != 1 || !strings.Contains(got[0], "From: =?utf-8?q?R=C3=A9mi?= <remi@example.org>") ||
		!strings.Contains(got[0], "corps accentué") {
		t.Errorf("stored %q", got)
	}
}

// TestQuarantineRetry: a refused message waits in the quarantine with its
// folder and flags; once the cause is gone, the quarantine is offered to the
// pipeline again and empties.
func TestQuarantineRetry(t *testing.T) {
	msgs := []string{msg(1, true), msg(2, true)}
	e := newEnv(t, msgs)
	qdir := filepath.Join(e.dir, "quarantine")
	opts := migrate.Options{Backoff: time.Millisecond, Keep: migrate.DirKeeper{Dir: qdir}, Folder: "Archive"}
	sum, err := migrate.Run(context.Background(), e.src, refuser{e.dst}, e.state, opts)
	if err != nil || sum.Failed != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	items, err := migrate.ListQuarantine(qdir)
	if err != nil || len(items) != 1 || items[0].Record.Folder != "Archive" || !strings.Contains(items[0].Record.Reason, "PARSE") ||
		!slices.Equal(items[0].Record.Flags, []string{`\Seen`}) {
		t.Fatalf("quarantine %+v %v", items, err)
	}
	q := &migrate.QuarantineSource{Dir: qdir}
	sum, err = migrate.Run(context.Background(), q, e.dst, e.state, migrate.Options{Backoff: time.Millisecond})
	if err != nil || sum.Copied != 1 {
		t.Fatalf("retry: %+v %v", sum, err)
	}
	if n, err := q.Release(e.state); err != nil || n != 1 {
		t.Fatalf("release %d %v", n, err)
	}
	if items, _ := migrate.ListQuarantine(qdir); len(items) != 0 {
		t.Fatalf("quarantine not emptied: %+v", items)
	}
	var got int
	e.dst.Scan(context.Background(), "Archive", 0, func(migrate.Existing) error { got++; return nil })
	if got != 2 {
		t.Fatalf("Archive holds %d, want 2", got)
	}
	if rec, _, _ := e.state.Get("uidl:m1"); rec.State != migrate.Copied {
		t.Fatalf("record %+v", rec)
	}
}

// TestLoginRefusedForNow: a login refused with [SYS/TEMP] (RFC 3206) gets
// one more attempt after AuthPause, never more.
func TestLoginRefusedForNow(t *testing.T) {
	for _, tc := range []struct {
		temp   int // how many logins the server refuses "for now"
		logins int // logins attempted
		ok     bool
	}{{1, 2, true}, {5, 2, false}} {
		refused := 0
		e := newEnv(t, []string{msg(1, true)}, func(conn net.Conn, _ int, line string) bool {
			if strings.HasPrefix(line, "PASS") && refused < tc.temp {
				refused++
				fmt.Fprint(conn, "-ERR [SYS/TEMP] too many connections, try later\r\n")
				return true
			}
			return false
		})
		sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{AuthPause: 20 * time.Millisecond})
		var auth *migrate.AuthError
		if tc.ok && (err != nil || sum.Copied != 1) || !tc.ok && (!errors.As(err, &auth) || !auth.Transient) {
			t.Fatalf("temp=%d: %+v %v", tc.temp, sum, err)
		}
		logins, _, _ := e.pop.Counts()
		if refused+logins != tc.logins {
			t.Fatalf("temp=%d: %d login attempts, want %d", tc.temp, refused+logins, tc.logins)
		}
	}
}

// TestSuggestedBackoff: a throttled APPEND ("Suggested Backoff Time") is
// retried no sooner than the server asked, and the message is there once.
func TestSuggestedBackoff(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true)})
	d := &throttler{Destination: e.dst}
	start := time.Now()
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{Backoff: time.Millisecond})
	if err != nil || sum.Copied != 2 {
		t.Fatalf("%+v %v", sum, err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("retried after %v, sooner than the 300 ms the server asked", waited)
	}
	if got := len(e.inbox(t)); got != 2 {
		t.Fatalf("INBOX holds %d, want 2", got)
	}
}

type throttler struct {
	migrate.Destination
	done bool
}

func (d *throttler) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	if !d.done {
		d.done = true
		return migrate.Appended{}, errors.New("NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 300 ms")
	}
	return d.Destination.Append(ctx, folder, m)
}

// TestThrottle: --rate 20 messages per second holds 10 appends to at least
// 450 ms.
func TestThrottle(t *testing.T) {
	var msgs []string
	for i := 0; i < 10; i++ {
		msgs = append(msgs, msg(i, true))
	}
	e := newEnv(t, msgs)
	start := time.Now()
	sum, err := migrate.Run(context.Background(), e.src, migrate.Throttle(e.dst, 20, 0), e.state, migrate.Options{})
	if err != nil || sum.Copied != 10 {
		t.Fatalf("%+v %v", sum, err)
	}
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Fatalf("10 messages at 20/s took %v", took)
	}
}

// fullDisk is a checkpoint whose disk fills up after some writes.
type fullDisk struct {
	migrate.Checkpoint
	left int
}

func (c *fullDisk) Put(r migrate.Record) error {
	if c.left--; c.left < 0 {
		return &os.PathError{Op: "write", Path: "state.db", Err: syscall.ENOSPC}
	}
	return c.Checkpoint.Put(r)
}

// TestStateDiskFull: when the state file cannot be written the run stops
// at once, saying why; once there is room, the next run finishes with each
// message once.
func TestStateDiskFull(t *testing.T) {
	var msgs []string
	for i := 0; i < 20; i++ {
		msgs = append(msgs, msg(i, i%3 != 0))
	}
	e := newEnv(t, msgs)
	sum, err := migrate.Run(context.Background(), e.src, e.dst, &fullDisk{Checkpoint: e.state, left: 13}, migrate.Options{Backoff: time.Millisecond})
	if !errors.Is(err, syscall.ENOSPC) || sum.Copied == 0 || sum.Copied == len(msgs) {
		t.Fatalf("%+v %v", sum, err)
	}
	sum = e.run(t, nil)
	got := e.inbox(t)
	if len(got) != len(msgs) {
		t.Fatalf("INBOX holds %d, want %d (reconciled %d)", len(got), len(msgs), sum.Reconciled)
	}
	seen := map[string]bool{}
	for _, m := range got {
		if seen[m] {
			t.Fatal("a message is there twice")
		}
		seen[m] = true
	}
}

// TestWrongDestinationPassword: a destination that refuses the password is
// asked once, not once more per append connection: providers lock accounts
// after a few refused logins.
func TestWrongDestinationPassword(t *testing.T) {
	e := newEnv(t, []string{msg(1, true), msg(2, true)})
	var tries atomic.Int32
	dst := imap.New(imap.Config{Addr: e.imapAddr, User: "u", TLSConfig: e.clientTLS, Timeout: 5 * time.Second,
		Password: func() (string, error) { tries.Add(1); return "wrong", nil }})
	defer dst.Close()
	_, err := migrate.Run(context.Background(), e.src, dst, e.state, migrate.Options{Connections: 4})
	var auth *migrate.AuthError
	if !errors.As(err, &auth) || tries.Load() != 1 {
		t.Fatalf("%d logins, error %v; want one refused login", tries.Load(), err)
	}
}

// TestParallelWithoutExtensions: a server with neither LITERAL+ nor
// MULTIAPPEND (go-imap's memory server) gets one APPEND at a time on each of
// the append connections, and every message once, in order.
func TestParallelWithoutExtensions(t *testing.T) {
	var msgs []string
	for i := range 150 {
		msgs = append(msgs, msg(i, i%2 == 0))
	}
	e := newEnv(t, msgs)
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Connections: 3})
	if err != nil || sum.Copied != len(msgs) {
		t.Fatalf("%+v %v", sum, err)
	}
	got := e.inbox(t)
	if len(got) != len(msgs) {
		t.Fatalf("INBOX holds %d of %d", len(got), len(msgs))
	}
	for i, m := range got {
		if !strings.Contains(m, fmt.Sprintf("Subject: message %d\r\n", i)) {
			t.Fatalf("position %d holds %.80q", i, m)
		}
	}
}
