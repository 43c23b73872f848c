package mime_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/mime"
)

func BenchmarkFingerprint(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200})
	all := bytes.Join(msgs, nil)
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		for _, m := range msgs {
			mime.FingerprintBytes(m)
		}
	}
}

func BenchmarkCRLFWriter(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200})
	all := bytes.Join(msgs, nil)
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		w := &mime.CRLFWriter{W: io.Discard}
		w.Write(all)
		w.Close()
	}
}

// BenchmarkProbe: what every message pays for the repair stage when it
// needs no repair.
func BenchmarkProbe(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200})
	all := bytes.Join(msgs, nil)
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		for _, m := range msgs {
			var p mime.Probe
			p.Write(m)
			p.Needs(mime.RepairOptions{})
		}
	}
}

// BenchmarkRepairXML unwraps an XML-wrapped message of about 60 KB.
func BenchmarkRepairXML(b *testing.B) {
	inner := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 1, MaxAttach: 40 << 10})[0]
	msg := []byte("Subject: x\r\nx-me-engine: defaul\r\n\r\n<?xml version=\"1.0\"?><m><raw>" +
		base64.StdEncoding.EncodeToString(inner) + "</raw></m>\r\n")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if r := mime.Repair(msg, mime.RepairOptions{}); !r.Changed {
			b.Fatal("not unwrapped")
		}
	}
}

// BenchmarkClassify reads a spam verdict from an Orange-style header.
func BenchmarkClassify(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200, Spam: 0.3, Forged: 0.1})
	headers := make([]mime.Header, len(msgs))
	for i, m := range msgs {
		headers[i] = mime.ParseHeader(m)
	}
	b.ResetTimer()
	for b.Loop() {
		for _, h := range headers {
			mime.Classify(mime.SpamInput{Header: h})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(headers)), "ns/msg")
}

// BenchmarkRepairTo: a 20 MB text with a NUL byte on every line, repaired
// from a reader (as the pipeline repairs a large spool file) and in memory.
func BenchmarkRepairTo(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("From: a@example.org\r\nSubject: NUL\r\n\r\n")
	for buf.Len() < 20<<20 {
		buf.WriteString("a line of text that holds a NUL byte here: \x00 and goes on after it\r\n")
	}
	msg := buf.Bytes()
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if _, err := mime.RepairTo(bytes.NewReader(msg), int64(len(msg)), mime.RepairOptions{}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			mime.Repair(msg, mime.RepairOptions{})
		}
	})
}
