package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
)

// genSource yields n messages of size bytes, perFolder to a folder, made on
// the fly (nothing held).
type genSource struct {
	n, perFolder, size int
	atLast             func()
}

func (g *genSource) List(context.Context) ([]migrate.Entry, error) {
	var out []migrate.Entry
	for i := 0; i < g.n; i++ {
		out = append(out, migrate.Entry{ID: fmt.Sprintf("gen:%d", i), Num: i + 1, Size: int64(g.size)})
	}
	return out, nil
}
func (g *genSource) Retrieve(ctx context.Context, es []migrate.Entry, fn func(*migrate.Incoming) error) error {
	for _, e := range es {
		i := e.Num - 1
		m := fmt.Sprintf("Message-ID: <gen-%d@test>\r\nSubject: m %d\r\nFrom: a@b\r\n\r\n%s\r\n", i, i, strings.Repeat("z", g.size))
		in := &migrate.Incoming{Entry: e, R: bytes.NewReader([]byte(m))}
		in.Dest = fmt.Sprintf("F%03d", i/g.perFolder)
		if i == g.n-1 && g.atLast != nil {
			g.atLast()
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}
func (g *genSource) Describe() string { return "gen" }
func (g *genSource) Close() error     { return nil }

// recDest's pipe takes the messages and records when each folder's
// first batch was handed over.
type recDest struct {
	migrate.Destination
	mu    sync.Mutex
	sends []string
}

func (d *recDest) Pipe(n int) migrate.Pipe { return &recPipe{d: d} }

type recPipe struct {
	d  *recDest
	wg sync.WaitGroup
}

func (p *recPipe) Send(ctx context.Context, folder string, msgs []migrate.Outgoing, done func([]migrate.AppendResult)) {
	p.d.mu.Lock()
	p.d.sends = append(p.d.sends, folder)
	p.d.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		res := make([]migrate.AppendResult, len(msgs))
		for _, m := range msgs {
			// Stored nowhere: the heap measured is the runner's alone.
			io.Copy(io.Discard, m.Body.Open())
		}
		done(res)
	}()
}
func (p *recPipe) Close() error { p.wg.Wait(); return nil }

// TestTailBatchesSentEarly: 120 folders of 40 messages of 60 KB, each
// folder's batch under every limit of its own (100 messages, 16 MB, 3 MB in
// memory). A folder the source has left is sent without waiting for the end:
// before the last message is read, nearly every folder has gone, and the
// heap stays far from holding every tail.
func TestTailBatchesSentEarly(t *testing.T) {
	e := newEnv(t, nil)
	var heap uint64
	var sentBefore int
	d := &recDest{Destination: e.dst}
	g := &genSource{n: 120 * 40, perFolder: 40, size: 60 << 10}
	g.atLast = func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = ms.HeapAlloc
		d.mu.Lock()
		sentBefore = len(d.sends)
		d.mu.Unlock()
	}
	sum, err := migrate.Run(context.Background(), g, d, e.state, migrate.Options{Connections: 2, Backoff: time.Millisecond, Run: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied != 120*40 {
		t.Fatalf("copied %d of %d", sum.Copied, 120*40)
	}
	if sentBefore < 110 {
		t.Errorf("%d batches sent before the last message was read, want nearly all 120 folders", sentBefore)
	}
	if heap > 64<<20 {
		t.Errorf("heap %d MB while reading the last message", heap>>20)
	}
}
