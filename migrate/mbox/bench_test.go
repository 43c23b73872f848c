package mbox

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/internal/mailgen"
	"github.com/mailmove/mailmove/migrate"
)

// repeated is a file made of one mbox message repeated n times, generated
// on read, so tests can stream hundreds of megabytes without a disk.
type repeated struct {
	unit []byte
	n    int64
}

func (r repeated) size() int64 { return int64(len(r.unit)) * r.n }

func (r repeated) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size() {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < r.size() {
		k := copy(p[n:], r.unit[off%int64(len(r.unit)):])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// bigMessage is an mbox message of about size bytes: ordinary lines, a
// base64-like block and one line of a megabyte, longer than any buffer.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From big@example.org Mon Feb  5 08:01:00 2024\nSubject: big\nMessage-ID: <big@example.org>\n\n")
	b.WriteString(strings.Repeat("y", 1<<20) + "\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 30)[:998] + "\n"
	for b.Len() < size {
		b.WriteString(line)
		b.WriteString(">From quoted\n")
	}
	b.WriteString("\n")
	return b.Bytes()
}

// TestBoundedMemory streams 96 MB of 32 MB messages: the heap must stay
// within a few megabytes whatever the file and message sizes.
func TestBoundedMemory(t *testing.T) {
	f := repeated{unit: bigMessage(32 << 20), n: 3}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	rd := NewReader(f, f.size(), 0, Auto, time.UTC)
	buf := make([]byte, 256<<10)
	msgs, total := 0, int64(0)
	for {
		_, body, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		for i := 0; ; i++ {
			n, err := body.Read(buf)
			total += int64(n)
			if i%64 == 0 {
				runtime.GC() // count what is live, not garbage
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
			if err != nil {
				break
			}
		}
	}
	if msgs != int(f.n) {
		t.Fatalf("read %d messages, want %d", msgs, f.n)
	}
	grew := int64(peak) - int64(base)
	t.Logf("streamed %d MB in %d messages; heap grew at most %.1f MB", total>>20, msgs, float64(grew)/(1<<20))
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MB reading %d MB: the reader is not streaming", grew>>20, total>>20)
	}
}

// BenchmarkReader reads a realistic mailbox written as mboxrd.
func BenchmarkReader(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, m := range mailgen.Mailbox(mailgen.Options{Seed: 12, Count: 300}) {
		w.Write(FromLine("-", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), m)
	}
	w.Flush()
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data), int64(len(data)), 0, Auto, time.UTC)
		for {
			_, body, err := rd.Next()
			if err != nil {
				break
			}
			io.Copy(io.Discard, body)
		}
	}
}

// BenchmarkReaderLarge streams 40 MB messages; its heap figure is the
// reader's memory ceiling.
func BenchmarkReaderLarge(b *testing.B) {
	f := repeated{unit: bigMessage(40 << 20), n: 2}
	b.SetBytes(f.size())
	for b.Loop() {
		rd := NewReader(f, f.size(), 0, Auto, time.UTC)
		for {
			_, body, err := rd.Next()
			if err != nil {
				break
			}
			io.Copy(io.Discard, body)
		}
	}
}

// BenchmarkSource lists and reads an mbox file on disk as a migration does:
// one pass to list and fingerprint, one to deliver with flags and headers.
func BenchmarkSource(b *testing.B) {
	path := filepath.Join(b.TempDir(), "Inbox")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(fh)
	size := int64(0)
	for _, m := range mailgen.Mailbox(mailgen.Options{Seed: 13, Count: 500}) {
		w.Write(FromLine("-", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), append([]byte("X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\n"), m...))
		size += int64(len(m))
	}
	w.Flush()
	fh.Close()
	b.SetBytes(size)
	for b.Loop() {
		src := NewSource(Config{Path: path})
		entries, err := src.List(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		err = src.Retrieve(context.Background(), entries, func(in *migrate.Incoming) error {
			_, err := io.Copy(io.Discard, in.R)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "msgs/s")
}
