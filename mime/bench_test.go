package mime_test

import (
	"bytes"
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
