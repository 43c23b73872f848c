package migrate_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailmove/mailmove/migrate"
)

// cyrusLike is a destination whose personal namespace is under INBOX and
// which refuses to create anything beside it, as Cyrus (altnamespace: no)
// and Courier do; claim is the namespace it tells (a server without
// NAMESPACE tells nothing).
type cyrusLike struct {
	migrate.Destination
	claim   migrate.Namespace
	creates atomic.Int32 // refused creates
}

func (c *cyrusLike) Account(context.Context) (migrate.Account, error) {
	return migrate.Account{Namespace: c.claim}, nil
}

func (c *cyrusLike) Mailbox(ctx context.Context, name string, create bool) (migrate.MailboxInfo, error) {
	if create && name != "INBOX" && !strings.HasPrefix(name, "INBOX/") {
		c.creates.Add(1)
		return migrate.MailboxInfo{}, &migrate.FolderError{Folder: name, Err: errors.New("create folder " + name + ": NO Permission denied")}
	}
	return c.Destination.Mailbox(ctx, name, create)
}

func spamAndHam() []string {
	var msgs []string
	for i := 0; i < 12; i++ {
		msgs = append(msgs, verdictMsg(i, i%3 == 0))
	}
	return msgs
}

// TestFolderUnderNamespace: junk goes under the personal namespace, and
// everything arrives.
func TestFolderUnderNamespace(t *testing.T) {
	e := newEnv(t, spamAndHam())
	d := &cyrusLike{Destination: e.dst, claim: migrate.Namespace{Prefix: "INBOX/", Delim: '/'}}
	sum := e.run(t, d)
	if sum.JunkFolder != "INBOX/Junk" || sum.Copied != 12 || sum.Failed != 0 || d.creates.Load() != 0 {
		t.Fatalf("junk %q, copied %d, failed %d, refused creates %d", sum.JunkFolder, sum.Copied, sum.Failed, d.creates.Load())
	}
}

// TestFolderRefused: a folder the server will not create fails its own
// messages, once and with the server's words, and the rest is copied.
func TestFolderRefused(t *testing.T) {
	e := newEnv(t, spamAndHam())
	d := &cyrusLike{Destination: e.dst} // says nothing of its namespace
	ev := &recorder{}
	sum, err := migrate.Run(context.Background(), e.src, d, e.state, migrate.Options{Observer: ev, Run: "test"})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Copied != 8 || sum.Failed != 4 || d.creates.Load() != 1 {
		t.Fatalf("copied %d, failed %d, refused creates %d (want 8, 4, 1)", sum.Copied, sum.Failed, d.creates.Load())
	}
	for _, x := range ev.events {
		if x.Action == migrate.ActFailed && !strings.Contains(x.Reason, "Permission denied") {
			t.Errorf("failed without the server's words: %q", x.Reason)
		}
	}
	if got := len(e.inbox(t)); got != 8 {
		t.Errorf("INBOX holds %d, want the 8 ham", got)
	}
}

// TestFolderMapOnPOP3: a POP3 mailbox has no folders, so a --folder-map
// does nothing (--folder was meant): said, and the messages go to INBOX.
func TestFolderMapOnPOP3(t *testing.T) {
	e := newEnv(t, []string{msg(1, true)})
	sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{FolderMap: map[string]string{"INBOX": "Orange"}})
	if err != nil || sum.Copied != 1 || !slices.ContainsFunc(sum.Notes, func(n string) bool { return strings.Contains(n, "--folder NAME") }) {
		t.Fatalf("copied %d, notes %q (%v)", sum.Copied, sum.Notes, err)
	}
}
