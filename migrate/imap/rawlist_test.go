package imap

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/faultproxy"
	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/migrate"
)

// TestUndecodableFolderName: a server that lists a folder whose name is not
// valid modified UTF-7 (go-imap gives up on the whole listing) still gets
// its folders listed, that one left out and named, and messages appended.
func TestUndecodableFolderName(t *testing.T) {
	addr, _, stop, err := memimap.ServePlain("u", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cfg := Config{Addr: addr, User: "u", Password: func() (string, error) { return "p", nil }, TLS: TLSNone, Timeout: 5 * time.Second}
	setup := New(cfg)
	if _, err := setup.Mailbox(context.Background(), "Broken", true); err != nil {
		t.Fatal(err)
	}
	setup.Close()
	proxy, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.Always(faultproxy.Fault{Down: func(line []byte) ([]byte, bool) {
		if bytes.HasPrefix(line, []byte("* LIST")) {
			line = bytes.Replace(line, []byte("Broken"), []byte("Br&ZZZ"), 1) // no closing "-"
		}
		return line, false
	}})
	cfg.Addr = proxy.Addr()
	d := New(cfg)
	defer d.Close()
	folders, err := d.Folders(context.Background())
	if err != nil {
		t.Fatalf("folders: %v", err)
	}
	if len(folders) != 1 || folders[0].Name != "INBOX" {
		t.Fatalf("folders %v", folders)
	}
	acct, err := d.Account(context.Background())
	if err != nil || len(acct.Notes) != 1 || !strings.Contains(acct.Notes[0], `"Br&ZZZ"`) {
		t.Fatalf("account %+v %v", acct, err)
	}
	if _, err := d.Append(context.Background(), "INBOX", migrate.Outgoing{Body: migrate.BodyFromBytes([]byte("Subject: x\r\n\r\nbody\r\n"))}); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func TestDecodeMailbox(t *testing.T) {
	for _, name := range []string{"INBOX", "Réunions", "a&b", "日本語", "Courrier indésirable", "x/y.z"} {
		got, err := decodeMailbox(encodeMailbox(name))
		if err != nil || got != name {
			t.Errorf("%q: %q %v", name, got, err)
		}
	}
	for _, bad := range []string{"a&ZZZ", "&AGE-", "caf\xe9", "&Jjo"} {
		if _, err := decodeMailbox(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
