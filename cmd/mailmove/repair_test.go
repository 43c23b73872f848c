package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/mime"
)

// TestRepairFixturesDovecot serves every repair fixture over Dovecot's POP3
// and migrates it into Dovecot's IMAP: each arrives as Repair says (legit
// XML mail and clean mail byte for byte), the readable stand-in in the
// review folder, and every repaired message's original is kept.
func TestRepairFixturesDovecot(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/repair/*.eml")
	var msgs [][]byte
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "bare-cr.eml") {
			// Dovecot's POP3 serves a final bare CR as CR CRLF: the message
			// changes before mailmove sees it. The golden test covers it.
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msgs, names = append(msgs, b), append(names, filepath.Base(f))
	}
	if len(msgs) < 24 {
		t.Fatalf("fixtures missing: %d", len(msgs))
	}
	p := newPair(t, msgs)
	sum, out, err := p.runMain(t, p.args("--dry-run", "--show-repairs", "--spam", "ignore")...)
	if err != nil || !strings.Contains(out, "repair xml-unwrapped") || !strings.Contains(out, "- x-me-engine: defaul") {
		t.Fatalf("dry-run: %v\n%s", err, out)
	}
	if sum.Repairs["nul"] == 0 || sum.Repairs["xml-readable"] != 1 {
		t.Errorf("dry-run repair counts %v", sum.Repairs)
	}
	if _, err := os.Stat(strings.TrimSuffix(p.state, ".db") + ".originals"); err == nil {
		t.Errorf("the dry-run kept originals")
	}

	sum, out, err = p.runMain(t, p.args("--spam", "ignore")...)
	if err != nil || sum.Failed != 0 {
		t.Fatalf("run: %+v %v\n%s", sum, err, out)
	}
	stored := append(p.fetchAll(t, p.dst, "INBOX"), p.fetchAll(t, p.dst, "mailmove-review")...)
	review := p.fetchAll(t, p.dst, "mailmove-review")
	have := map[string]bool{}
	dates := map[time.Time]bool{}
	for _, s := range stored {
		have[string(s.body)] = true
		dates[s.date] = true
	}
	want := map[string]bool{}
	for i, m := range msgs {
		found := false
		// Messages given a header by mailmove carry the run's date.
		for d := range dates {
			exp := mime.Repair(m, mime.RepairOptions{Date: d})
			if have[string(exp.Msg)] {
				want[string(exp.Msg)], found = true, true
				if exp.Review && !containsBody(review, exp.Msg) {
					t.Errorf("%s: not in the review folder", names[i])
				}
				break
			}
		}
		if !found {
			t.Errorf("%s: not at the destination as Repair makes it", names[i])
		}
	}
	for k := range have {
		if !want[k] {
			t.Errorf("a stored message matches no fixture: %.200q", k)
		}
	}
	originals, _ := os.ReadDir(strings.TrimSuffix(p.state, ".db") + ".originals")
	if len(originals) == 0 {
		t.Errorf("no original kept")
	}
	t.Logf("%d fixtures, %d stored, %d originals kept; repairs %v", len(msgs), len(stored), len(originals)/2, sum.Repairs)
}

func containsBody(got []stored, b []byte) bool {
	for _, s := range got {
		if string(s.body) == string(b) {
			return true
		}
	}
	return false
}
