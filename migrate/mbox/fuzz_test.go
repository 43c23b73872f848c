package mbox

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzReader feeds arbitrary bytes to the reader: it must never panic or
// loop, offsets must increase, and every message must lie within the file.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.mbox")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("From a Mon Feb  5 08:01:00 2024\nContent-Length: 3\n\nabc\nFrom b Mon Feb  5 08:01:00 2024\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := NewReader(bytes.NewReader(data), int64(len(data)), 0, Auto, time.UTC)
		last := int64(-1)
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatal("more messages than bytes")
			}
			m, body, err := rd.Next()
			if err != nil {
				return
			}
			if m.Offset <= last || m.Offset >= int64(len(data)) {
				t.Fatalf("message %d at offset %d after %d (size %d)", i, m.Offset, last, len(data))
			}
			last = m.Offset
			n, err := io.Copy(io.Discard, body)
			if err != nil {
				return
			}
			if int64(len(m.Header))+n > int64(len(data)) {
				t.Fatalf("message %d larger than the file", i)
			}
			if m.End < m.Offset || m.End > int64(len(data)) {
				t.Fatalf("message %d ends at %d (starts %d, size %d)", i, m.End, m.Offset, len(data))
			}
		}
	})
}

// FuzzRoundTrip writes up to three messages made from the input and reads
// them back: what the Writer writes, the Reader returns unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add("Subject: a\n\nFrom here\n>From x\n", "S: b\n\n\n", "S: c\n\nFrom a Mon Feb  5 08:01:00 2024\nS: d\n")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var msgs []string
		for _, s := range []string{a, b, c} {
			// The Writer's contract: a header, an empty line, and a final
			// line break (it adds one, and the reader cannot tell).
			// Its first line must be a header field (how the reader tells a
			// separator from a body line).
			s = "S: x\n" + strings.ReplaceAll(s, "\r", "")
			if !strings.Contains(s, "\n\n") {
				s = "S: x\n\n" + s
			}
			if !strings.HasSuffix(s, "\n") {
				s += "\n"
			}
			if h, _, _ := strings.Cut(s, "\n\n"); strings.Contains("\n"+h, "\nFrom ") || strings.Contains(h, ">From ") {
				continue // a header holding a From_ line is not a message the Writer accepts
			}
			msgs = append(msgs, s)
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, m := range msgs {
			w.Write(FromLine("x", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), []byte(m))
		}
		w.Flush()
		got := readAll(t, buf.Bytes(), 0)
		if len(got) != len(msgs) {
			t.Fatalf("wrote %d messages, read %d:\n%q", len(msgs), len(got), buf.String())
		}
		for i := range msgs {
			if got[i].content != msgs[i] {
				t.Fatalf("message %d:\ngot  %q\nwant %q", i, got[i].content, msgs[i])
			}
		}
	})
}
