package migrate_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

// xServer stores an X for every 8-bit header byte, as Cyrus does by
// default, while saying it takes them (a server that lies, or is
// misconfigured): mailmove must find it out by reading back.
type xServer struct{ migrate.Destination }

func (x xServer) Account(ctx context.Context) (migrate.Account, error) {
	a, err := x.Destination.Account(ctx)
	a.UTF8 = true
	return a, err
}

func (x xServer) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	b, _ := io.ReadAll(m.Body.Open())
	end := bytes.Index(b, []byte("\r\n\r\n"))
	for i := 0; i < end; i++ {
		if b[i] >= 0x80 {
			b[i] = 'X'
		}
	}
	m.Body = migrate.BodyFromBytes(b)
	return x.Destination.Append(ctx, folder, m)
}

// TestAlteredFoundOut: the message the server altered is reported, its
// original kept, and the next messages are encoded before sending, so they
// arrive unaltered.
func TestAlteredFoundOut(t *testing.T) {
	msgs := []string{
		"From: Zo\xc3\xab <zoe@example.org>\r\nSubject: un\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
		"From: Ren\xc3\xa9e <renee@example.org>\r\nSubject: deux\r\nMessage-ID: <2@x>\r\n\r\nbody\r\n",
	}
	e := newEnv(t, msgs)
	rec := &recorder{}
	odir := filepath.Join(e.dir, "originals")
	sum, err := migrate.Run(context.Background(), e.src, xServer{e.dst}, e.state, migrate.Options{
		Observer: rec, Archive: migrate.DirKeeper{Dir: odir},
	})
	if err != nil || sum.Copied != 2 || sum.Altered != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	first := rec.events[0]
	if first.Altered == nil || !first.Altered.InHeader || first.Altered.Offset != 8 || first.Original == "" {
		t.Fatalf("first message: altered %v, original %q", first.Altered, first.Original)
	}
	if !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "encoded before sending from now on") }) {
		t.Errorf("notes %q", sum.Notes)
	}
	if second := rec.events[1]; second.Altered != nil || len(second.Repairs) != 1 || second.Repairs[0].Code != "header-8bit" {
		t.Errorf("second message: altered %v, repairs %v", second.Altered, second.Repairs)
	}
	got := e.inbox(t)
	if !strings.Contains(got[1], "From: =?utf-8?q?Ren=C3=A9e?=") {
		t.Errorf("second stored as %q", got[1])
	}
	// The altered copy is found there, but is not the message: the source
	// keeps it whatever --delete-after-verify says.
	v, todo, err := migrate.DeleteVerified(context.Background(), e.src, e.dst, e.state, 50, true)
	if err != nil || len(todo) != 1 || todo[0].ID != rec.events[1].ID || len(v.Stay) != 1 || v.Stay[0].ID != first.ID {
		t.Errorf("delete after verify would delete %+v and leave %+v (%v)", todo, v.Stay, err)
	}
}

// junkFilter takes $NotJunk off what is appended to INBOX, as mox's junk
// filter does.
type junkFilter struct{ migrate.Destination }

func (j junkFilter) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	if folder == "INBOX" {
		m.Flags = slices.DeleteFunc(slices.Clone(m.Flags), func(f string) bool { return f == migrate.KeywordNotJunk })
	}
	return j.Destination.Append(ctx, folder, m)
}

// TestFlagsRemovedReported: the report says what the server kept.
func TestFlagsRemovedReported(t *testing.T) {
	var msgs []string
	for i := 0; i < 6; i++ {
		msgs = append(msgs, verdictMsg(i, i == 5))
	}
	e := newEnv(t, msgs)
	rec := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, junkFilter{e.dst}, e.state, migrate.Options{Observer: rec})
	if err != nil || sum.Copied != 6 {
		t.Fatalf("%+v %v", sum, err)
	}
	for _, ev := range rec.events {
		ham := ev.Folder == "INBOX"
		if ham && (slices.Contains(ev.Flags, migrate.KeywordNotJunk) || !slices.Contains(ev.Dropped, "$NotJunk (removed by the server)")) {
			t.Errorf("%s: flags %v, dropped %v", ev.ID, ev.Flags, ev.Dropped)
		}
		if !ham && !slices.Contains(ev.Flags, migrate.KeywordJunk) {
			t.Errorf("%s in %s: flags %v", ev.ID, ev.Folder, ev.Flags)
		}
	}
}

// TestEarlierFormsRecognised: a folder that already holds a message as an
// earlier tool stored it (8-bit header bytes raw, before mailmove encoded
// them; CR CR LF as two line breaks, as mailmove 0.1 wrote it) gets no
// second copy in its new form.
func TestEarlierFormsRecognised(t *testing.T) {
	raw8bit := "From: Zo\xc3\xab <zoe@example.org>\r\nSubject: d\xc3\xa9j\xc3\xa0 l\xc3\xa0\r\nMessage-ID: <raw@x>\r\n\r\nbody\r\n"
	crcrlf := "From: a@example.org\r\r\nSubject: old Outlook\r\r\nMessage-ID: <cr@x>\r\r\n\r\r\nline one\r\r\nline two\r\r\n"
	nomid := "From: a@example.org\r\r\nSubject: no id\r\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\r\n\r\r\nline\r\r\n"
	e := newEnv(t, []string{raw8bit, crcrlf, nomid})
	for _, m := range []string{raw8bit, strings.ReplaceAll(crcrlf, "\r\r\n", "\r\n\r\n"), strings.ReplaceAll(nomid, "\r\r\n", "\r\n\r\n")} {
		if _, err := e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes([]byte(m))}); err != nil {
			t.Fatal(err)
		}
	}
	sum := e.run(t, nil)
	if sum.Present != 3 || sum.Copied != 0 {
		t.Fatalf("present %d, copied %d: want all 3 recognised", sum.Present, sum.Copied)
	}
	if got := len(e.inbox(t)); got != 3 {
		t.Fatalf("INBOX holds %d", got)
	}
}

// lyingUIDs stores messages but reports UIDs that are not theirs.
type lyingUIDs struct {
	migrate.Destination
	uid func(real uint32) uint32
}

func (l lyingUIDs) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	a, err := l.Destination.Append(ctx, folder, m)
	a.UID = l.uid(a.UID)
	return a, err
}

// TestUndoRefusesForeignUIDs: UIDs a server reported for the user's own
// messages (too low, or the same for two copies) are not expunged by undo:
// the user's mail stays, and what was refused is listed.
func TestUndoRefusesForeignUIDs(t *testing.T) {
	for name, lie := range map[string]func(uint32) uint32{
		"too low":  func(real uint32) uint32 { return real - 2 },
		"repeated": func(uint32) uint32 { return 3 },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, []string{msg(1, true), msg(2, true)})
			own := []string{msg(10, true), msg(11, true)}
			for _, m := range own { // the user's, UIDs 1 and 2
				if _, err := e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes([]byte(m))}); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := migrate.Run(context.Background(), e.src, lyingUIDs{e.dst, lie}, e.state, migrate.Options{Run: "r1"})
			if err != nil || sum.Copied != 2 {
				t.Fatalf("%+v %v", sum, err)
			}
			plan, err := migrate.PlanUndo(e.state, "r1")
			if err != nil || plan.Count() != 2 {
				t.Fatalf("plan %+v %v", plan, err)
			}
			n, refused, err := migrate.Undo(context.Background(), e.dst, e.state, plan)
			if err != nil || n != 0 || len(refused) != 2 {
				t.Fatalf("removed %d, refused %v, %v", n, refused, err)
			}
			got := e.inbox(t)
			if len(got) != 4 || got[0] != own[0] || got[1] != own[1] {
				t.Fatalf("INBOX holds %d: the user's own mail is touched", len(got))
			}
		})
	}
}

// otherRun appends, when the run appends its first message, one message of
// the same mailbox as another run copying into the account would.
type otherRun struct {
	migrate.Destination
	msg  string
	once sync.Once
}

func (o *otherRun) Append(ctx context.Context, folder string, m migrate.Outgoing) (migrate.Appended, error) {
	o.once.Do(func() {
		o.Destination.Append(ctx, folder, migrate.Outgoing{Body: migrate.BodyFromBytes([]byte(o.msg))})
		time.Sleep(2100 * time.Millisecond) // past the index's refresh interval
	})
	return o.Destination.Append(ctx, folder, m)
}

// TestSharedDestination: a message another run appended after this run
// read the folder is found there, not copied a second time.
func TestSharedDestination(t *testing.T) {
	var msgs []string
	for i := 0; i < 10; i++ {
		msgs = append(msgs, msg(i, true))
	}
	e := newEnv(t, msgs)
	sum, err := migrate.Run(context.Background(), e.src, &otherRun{Destination: e.dst, msg: msgs[5]}, e.state,
		migrate.Options{SharedDestination: true})
	if err != nil || sum.Copied != 9 || sum.Present != 1 {
		t.Fatalf("copied %d, present %d: %v", sum.Copied, sum.Present, err)
	}
	if got := len(e.inbox(t)); got != 10 {
		t.Fatalf("INBOX holds %d", got)
	}
}

// lateServer shows a folder empty the first time it is read, as a server
// still storing what a killed run sent it does.
type lateServer struct {
	migrate.Destination
	scans int
}

func (l *lateServer) Scan(ctx context.Context, folder string, from uint32, fn func(migrate.Existing) error) error {
	if l.scans++; l.scans == 1 {
		return nil
	}
	return l.Destination.Scan(ctx, folder, from, fn)
}

// TestReconcileLooksAgain: a message a killed run had in flight, not yet
// visible when the next run first looks, is found when it looks again a
// moment later, and not copied twice.
func TestReconcileLooksAgain(t *testing.T) {
	msgs := []string{msg(1, true)}
	e := newEnv(t, msgs)
	m := []byte(msgs[0])
	if _, err := e.dst.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes(m)}); err != nil {
		t.Fatal(err)
	}
	e.state.Put(migrate.Record{ID: "uidl:m0", State: migrate.Pending, Folder: "INBOX", Size: int64(len(m)),
		Fingerprint: fpOf(m), Key: keyOf(m), MessageID: "1@test"})
	sum := e.run(t, &lateServer{Destination: e.dst})
	if sum.Reconciled != 1 || sum.Copied != 0 {
		t.Fatalf("reconciled %d, copied %d", sum.Reconciled, sum.Copied)
	}
}

// utf8Server says it takes 8-bit headers (UTF8=ACCEPT) and stores them as
// they come.
type utf8Server struct{ migrate.Destination }

func (u utf8Server) Account(ctx context.Context) (migrate.Account, error) {
	a, err := u.Destination.Account(ctx)
	a.UTF8 = true
	return a, err
}

// TestLatin1HeaderEncodedUnderUTF8: with UTF8=ACCEPT a UTF-8 header goes
// as it is, but one in Latin-1 is encoded all the same (RFC 6855 allows
// UTF-8 only), with the reason said, and arrives readable.
func TestLatin1HeaderEncodedUnderUTF8(t *testing.T) {
	msgs := []string{
		"From: Zo\xc3\xab <zoe@example.org>\r\nSubject: un\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
		"From: Ren\xe9e <renee@example.org>\r\nSubject: deux\r\nMessage-ID: <2@x>\r\n\r\nbody\r\n",
	}
	e := newEnv(t, msgs)
	rec := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, utf8Server{e.dst}, e.state, migrate.Options{
		Observer: rec, Archive: migrate.DirKeeper{Dir: filepath.Join(e.dir, "originals")},
	})
	if err != nil || sum.Copied != 2 || sum.Altered != 0 {
		t.Fatalf("%+v %v", sum, err)
	}
	if r := rec.events[0].Repairs; len(r) != 0 {
		t.Errorf("UTF-8 header repaired: %v", r)
	}
	r := rec.events[1].Repairs
	if len(r) != 1 || r[0].Code != "header-8bit" || !strings.Contains(r[0].Text, "not UTF-8") {
		t.Errorf("Latin-1 header: repairs %+v", r)
	}
	got := e.inbox(t)
	if !strings.Contains(got[0], "From: Zo\xc3\xab <zoe@example.org>") || !strings.Contains(got[1], "From: =?utf-8?q?Ren=C3=A9e?=") {
		t.Errorf("stored %q", got)
	}
}
