package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	imapv2 "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmove/mailmove"
	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/internal/memimap"
	"github.com/mailmove/mailmove/internal/profilegen"
	"github.com/mailmove/mailmove/internal/testcert"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
)

// demo runs the real pipeline from an embedded POP3 server to an embedded
// IMAP server, both on 127.0.0.1 with TLS from a throwaway CA, then lists
// what arrived. Nothing leaves the machine.
func demo(args []string) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Println(`Usage: mailmove demo

Runs the real migration, end to end, on this machine alone: an embedded POP3
server and a Thunderbird folder set are copied into an embedded IMAP server
over verified TLS, with a dry-run first, so you can see what mailmove says
and does before pointing it at your own accounts. Needs no set-up and sends
nothing to the network.`)
		return exitOK
	}
	if err := runDemo(args); err != nil {
		fmt.Fprintln(os.Stderr, "mailmove demo:", err)
		return exitFatal
	}
	return exitOK
}

func runDemo(args []string) error {
	certs, err := testcert.New()
	if err != nil {
		return err
	}
	serverTLS, err := certs.TLSConfig()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mailmove-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certs.CAPEM, 0o600); err != nil {
		return err
	}

	// The POP3 side: the embedded mailbox.
	names, err := fs.Glob(mailmove.DemoMailbox, "testdata/demo/*.eml")
	if err != nil {
		return err
	}
	sort.Strings(names)
	pop := &pop3test.Server{User: "jean.dupont@orange.example", Pass: "demo-pop", TLS: serverTLS, SASL: true}
	for i, n := range names {
		b, err := mailmove.DemoMailbox.ReadFile(n)
		if err != nil {
			return err
		}
		pop.Messages = append(pop.Messages, pop3test.Message{UID: fmt.Sprintf("demo%04d", i+1), Data: b})
	}
	popAddr, err := pop.Start()
	if err != nil {
		return err
	}
	defer pop.Close()

	// The IMAP side: go-imap's in-memory server.
	imapAddr, stop, err := memimap.Serve(serverTLS, "jean.dupont@imap.example", "demo-imap")
	if err != nil {
		return err
	}
	defer stop()

	os.Setenv("MAILMOVE_FROM_PASSWORD", pop.Pass)
	os.Setenv("MAILMOVE_TO_PASSWORD", "demo-imap")
	common := []string{
		"--from", "pop3s://" + pop.User + "@" + popAddr,
		"--to", "imaps://jean.dupont@imap.example@" + imapAddr,
		"--ca-file", caFile, "--state", filepath.Join(dir, "state.db"),
		"--config", filepath.Join(dir, "no-config.toml"),
	}
	os.WriteFile(filepath.Join(dir, "no-config.toml"), nil, 0o600)
	step := func(title string, extra ...string) error {
		from := "pop3s://..."
		if len(extra) == 2 && extra[0] == "--from-is" {
			from, extra = extra[1], nil
		}
		fmt.Printf("\n=== %s\n$ mailmove %s\n", title, strings.Join(append(extra, "--from", from, "--to", "imaps://..."), " "))
		m := &Main{Stdout: os.Stdout, Stderr: os.Stdout}
		if err := m.ParseFlags(append(append([]string{}, common...), extra...)); err != nil {
			return err
		}
		sum, err := m.Run(context.Background())
		if code := exitCode(os.Stdout, sum, err); code != exitOK {
			return fmt.Errorf("exit code %d", code)
		}
		return nil
	}
	fmt.Printf("mailmove demo: a POP3 mailbox of %d messages (testdata/demo) on %s,\nan empty IMAP account on %s; both TLS-verified against a throwaway CA.\n",
		len(pop.Messages), popAddr, imapAddr)
	if err := step("1. Dry-run: what would happen, nothing written", "--dry-run"); err != nil {
		return err
	}
	if err := step("2. The migration", "--report", filepath.Join(dir, "report.json")); err != nil {
		return err
	}
	if err := step("3. Run again: it carries on where it stopped, here with nothing left to do"); err != nil {
		return err
	}

	// A Thunderbird "Local Folders" directory into the same account.
	tb := filepath.Join(dir, "Local Folders")
	msgs, spam := mailgen.Labelled(mailgen.Options{Seed: 2026, Count: 30, MaxAttach: 20 << 10, Spam: 0.2})
	if _, err := profilegen.Thunderbird(tb, msgs, spam, 2026); err != nil {
		return err
	}
	common[1] = "mbox:" + tb
	common[7] = filepath.Join(dir, "thunderbird.db")
	fmt.Printf("\n(a Thunderbird profile's Local Folders of %d messages: Inbox, Sent, Junk, Trash, Drafts, Archives/2023, Réunions, Work/Projects/Alpha)\n", len(msgs))
	if err := step("4. Thunderbird folders: flags, folders, junk and dates kept", "--from-is", "mbox:Local Folders"); err != nil {
		return err
	}
	return listDemo(imapAddr, certs.CAPEM)
}

func listDemo(addr string, ca []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login("jean.dupont@imap.example", "demo-imap").Wait(); err != nil {
		return err
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		return err
	}
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].Mailbox < boxes[j].Mailbox })
	fmt.Printf("\n=== 5. What the destination account now holds\n")
	for _, b := range boxes {
		data, err := c.Select(b.Mailbox, nil).Wait()
		if err != nil {
			return err
		}
		fmt.Printf("\n%s: %d message(s)\n", b.Mailbox, data.NumMessages)
		if data.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imapv2.SeqSet{imapv2.SeqRange{Start: 1, Stop: 0}}, &imapv2.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		}).Collect()
		if err != nil {
			return err
		}
		fmt.Printf("%4s  %-16s  %-28s  %8s  %s\n", "UID", "INTERNALDATE", "FLAGS", "SIZE", "SUBJECT")
		for _, m := range msgs {
			var flags []string
			for _, f := range m.Flags {
				flags = append(flags, string(f))
			}
			sort.Strings(flags)
			fmt.Printf("%4d  %-16s  %-28s  %8s  %s\n", m.UID, m.InternalDate.Local().Format("2006-01-02 15:04"), strings.Join(flags, " "),
				human(m.RFC822Size), clipRunes(m.Envelope.Subject, 50))
		}
	}
	return nil
}
