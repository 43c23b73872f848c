package migrate_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
)

// BenchmarkPipeline moves 500 realistic messages from the in-process POP3
// server to go-imap's in-memory server over loopback TLS, with the real
// checkpoint (two fsynced records per message). Reported per message.
func BenchmarkPipeline(b *testing.B) {
	msgs := mailgen.Mailbox(mailgen.Options{Seed: 11, Count: 500})
	var strs []string
	for _, m := range msgs {
		strs = append(strs, string(m))
	}
	total := len(bytes.Join(msgs, nil))
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, strs)
		b.StartTimer()
		sum, err := migrate.Run(context.Background(), e.src, e.dst, e.state, migrate.Options{Backoff: 10 * time.Millisecond})
		if err != nil || sum.Copied != len(msgs) {
			b.Fatalf("%+v %v", sum, err)
		}
		b.StopTimer()
		e.src.Close()
		e.dst.Close()
		e.state.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs))/1e3, "µs/msg")
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}
