package mbox

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// dump renders what the reader makes of an mbox, for the golden files.
func dump(t testing.TB, data []byte, format Format) string {
	t.Helper()
	var out strings.Builder
	rd := NewReader(bytes.NewReader(data), int64(len(data)), 0, format, time.UTC)
	for i := 1; ; i++ {
		m, body, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
			break
		}
		content, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "=== message %d: offset %d end %d content-length %v\n", i, m.Offset, m.End, m.ContentLength)
		fmt.Fprintf(&out, "sender %q date %s zone-given %v\n", m.Sender, m.Date.Format(time.RFC3339), m.ZoneGiven)
		for _, w := range m.Warnings {
			fmt.Fprintf(&out, "warning: %s\n", w)
		}
		fmt.Fprintf(&out, "%q\n", string(m.Header)+string(content))
	}
	return out.String()
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.mbox")
	files = append(files, "testdata/notmbox.txt")
	if len(files) < 8 {
		t.Fatalf("fixtures missing: %v", files)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := dump(t, data, Auto)
			golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				os.WriteFile(golden+".got", []byte(got), 0o644)
				t.Errorf("%s differs from %s (see %s.got)", path, golden, golden)
			}
		})
	}
}

func TestQuotingByFormat(t *testing.T) {
	mbox := "From a Mon Feb  5 08:00:00 2024\nS: x\n\n>From 1\n>>From 2\n"
	for _, tc := range []struct {
		f    Format
		want string
	}{
		{RD, "S: x\n\nFrom 1\n>From 2\n"},
		{Auto, "S: x\n\nFrom 1\n>From 2\n"},
		{O, "S: x\n\nFrom 1\n>>From 2\n"},
		{CL2, "S: x\n\n>From 1\n>>From 2\n"},
	} {
		rd := NewReader(strings.NewReader(mbox), int64(len(mbox)), 0, tc.f, time.UTC)
		m, body, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(body)
		if got := string(m.Header) + string(b); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestNotMbox(t *testing.T) {
	for _, data := range []string{"Subject: x\n\nbody\n", "\x89PNG\r\n\x1a\n\x00\x00", "From:x\n"} {
		rd := NewReader(strings.NewReader(data), int64(len(data)), 0, Auto, nil)
		if _, _, err := rd.Next(); !errors.Is(err, ErrNotMbox) {
			t.Errorf("%q: got %v, want ErrNotMbox", data, err)
		}
	}
	rd := NewReader(strings.NewReader(""), 0, 0, Auto, nil)
	if _, _, err := rd.Next(); err != io.EOF {
		t.Errorf("empty file: got %v, want io.EOF", err)
	}
}

func TestFromLine(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		line   string
		sender string
		date   string
		zone   bool
		ok     bool
	}{
		{"From - Tue Mar 14 09:12:45 2023", "-", "2023-03-14T09:12:45+01:00", false, true},
		{"From alice@example.org  Sat Jan  6 21:04:11 2024", "alice@example.org", "2024-01-06T21:04:11+01:00", false, true},
		{"From a Mon Feb  5 08:01:00 2024 +0000", "a", "2024-02-05T08:01:00Z", true, true},
		{"From a Mon Feb  5 08:01 2024", "a", "2024-02-05T08:01:00+01:00", false, true},
		{"From MAILER-DAEMON Fri Jul  8 12:08:34 2011", "MAILER-DAEMON", "2011-07-08T12:08:34+02:00", false, true},
		{"From  Mon Feb  5 08:01:00 2024", "", "2024-02-05T08:01:00+01:00", false, true},
		{"From here on, a sentence", "", "", false, false},
		{"From bob", "", "", false, false},
		{"From: alice", "", "", false, false},
	} {
		sender, date, zone, ok := ParseFromLine(tc.line, paris)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if sender != tc.sender || date.Format(time.RFC3339) != tc.date || zone != tc.zone {
			t.Errorf("%q: got %q %s %v, want %q %s %v", tc.line, sender, date.Format(time.RFC3339), zone, tc.sender, tc.date, tc.zone)
		}
	}
}

// TestResumeAtOffset reads from the offset of each message, as a resumed run
// does, and gets the same messages as a reading from the start.
func TestResumeAtOffset(t *testing.T) {
	data, err := os.ReadFile("testdata/thunderbird.mbox")
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, data, 0)
	for i, m := range all {
		rest := readAll(t, data, m.offset)
		if len(rest) != len(all)-i {
			t.Fatalf("from offset %d: %d messages, want %d", m.offset, len(rest), len(all)-i)
		}
		for j := range rest {
			if rest[j] != all[i+j] {
				t.Errorf("from offset %d, message %d differs", m.offset, j)
			}
		}
	}
}

type readMsg struct {
	offset  int64
	content string
}

func readAll(t testing.TB, data []byte, start int64) []readMsg {
	rd := NewReader(bytes.NewReader(data), int64(len(data)), start, Auto, time.UTC)
	var out []readMsg
	for {
		m, body, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, readMsg{m.Offset, string(m.Header) + string(b)})
	}
}

// TestRoundTrip writes messages with the Writer and reads them back, with
// lines longer than the reader's buffer and every kind of From line.
func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 3*bufSize+17)
	msgs := []string{
		"Subject: a\n\nFrom here.\n>From there.\n>>>From far.\n\nFrom x Mon Feb  5 08:01:00 2024\nS: y\n",
		"Subject: long\n\n" + long + "\n" + long + "\n",
		"Subject: crlf\r\n\r\nFrom a Mon Feb  5 08:01:00 2024\r\nS: y\r\n\r\n",
		"Subject: " + long + "\n\nbody\n\n\n",
		"Subject: empty body\n\n",
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	date := time.Date(2024, 2, 5, 8, 0, 0, 0, time.UTC)
	for _, m := range msgs {
		if err := w.Write(FromLine("a@example.org", date), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, buf.Bytes(), 0)
	if len(got) != len(msgs) {
		t.Fatalf("read %d messages, wrote %d", len(got), len(msgs))
	}
	for i := range msgs {
		if got[i].content != msgs[i] {
			t.Errorf("message %d: got %q..., want %q...", i, clip([]byte(got[i].content)), clip([]byte(msgs[i])))
		}
	}
}

// TestSeparatorWithoutBlank: procmail, delivering a message that lacks its
// final line break, adds one but no empty line before the next From_ line:
// that line still starts a message (with a warning), while a "From " line
// in a body, not followed by a header, does not.
func TestSeparatorWithoutBlank(t *testing.T) {
	data := "From s@x  Wed Dec  2 13:37:13 2026\nSubject: one\n\nlast line\n" +
		"From s@x  Wed Dec  2 13:37:14 2026\nSubject: two\n\nFrom me, hello\nbye\n\n"
	r := NewReader(strings.NewReader(data), int64(len(data)), 0, Auto, time.UTC)
	var got []string
	var warned bool
	for {
		m, body, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(body)
		got = append(got, string(m.Header)+string(b))
		warned = warned || len(m.Warnings) > 0
	}
	want := []string{"Subject: one\n\nlast line\n", "Subject: two\n\nFrom me, hello\nbye\n"}
	if !slices.Equal(got, want) || !warned {
		t.Fatalf("got %q (warned %v), want %q", got, warned, want)
	}
}
