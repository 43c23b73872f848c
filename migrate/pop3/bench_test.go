package pop3

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
)

func BenchmarkDotReader(b *testing.B) {
	var wire []byte
	for _, m := range mailgen.Mailbox(mailgen.Options{Seed: 9, Count: 200}) {
		wire = append(wire, pop3test.Stuff(m)...)
	}
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		br := bufio.NewReaderSize(bytes.NewReader(wire), 32<<10)
		for i := 0; i < 200; i++ {
			io.Copy(io.Discard, newDotReader(br))
		}
	}
}
