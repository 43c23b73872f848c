package mime

import (
	"bytes"
	"io"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
)

func BenchmarkFingerprint(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200})
	all := bytes.Join(msgs, nil)
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		for _, m := range msgs {
			FingerprintBytes(m)
		}
	}
}

func BenchmarkCRLFWriter(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200})
	all := bytes.Join(msgs, nil)
	b.SetBytes(int64(len(all)))
	for b.Loop() {
		w := &CRLFWriter{W: io.Discard}
		w.Write(all)
		w.Close()
	}
}
