package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate/pop3/pop3test"
)

// FuzzDotReader: any content, stuffed as a server would, decodes to itself.
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{"", ".", ".\r\n", "a\r\n.\r\n", "..\r\n", "x\n.\n", "\r.\r\n", "a\r\n.b\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := data
		if !bytes.HasSuffix(data, []byte("\r\n")) {
			want = append(append([]byte{}, data...), "\r\n"...)
		}
		stuffed := append(pop3test.Stuff(data), "+OK next\r\n"...)
		br := bufio.NewReaderSize(bytes.NewReader(stuffed), 16)
		got, err := io.ReadAll(newDotReader(br))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %q, want %q", got, want)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "+OK next\r\n" {
			t.Fatalf("decoder consumed past the terminator: left %q", rest)
		}
	})
}

// FuzzClientReplies: whatever a hostile server sends, the client returns
// (an error or data) without panicking or hanging.
func FuzzClientReplies(f *testing.F) {
	f.Add([]byte("+OK hi\r\n+OK\r\nUIDL\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n1 10\r\n.\r\n+OK\r\n1 abc\r\n.\r\n+OK\r\nx\r\n.\r\n"))
	f.Add([]byte("+OK\r\n-ERR no\r\n-ERR\r\n"))
	f.Add([]byte("garbage\r\n"))
	f.Fuzz(func(t *testing.T, script []byte) {
		client, server := net.Pipe()
		go func() {
			io.Copy(io.Discard, server)
		}()
		go func() {
			server.Write(script)
			time.Sleep(10 * time.Millisecond)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := Dial(ctx, "pipe", Options{TLS: TLSNone, Timeout: 200 * time.Millisecond,
			Dialer: func(context.Context, string, string) (net.Conn, error) { return client, nil }})
		if err != nil {
			return
		}
		defer c.Close()
		if c.Auth("u", "p") != nil {
			return
		}
		c.Stat()
		c.List()
		c.UIDL()
		c.TopHeaders([]int{1, 2}, func(int, []byte, error) error { return nil })
		if r, err := c.Retr(1); err == nil {
			io.Copy(io.Discard, r)
		}
	})
}
