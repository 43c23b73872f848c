package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmove/mailmove/migrate"
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
// (an error or data) within its timeouts, the password appears in no error
// and no debug line, listings hold only positive message numbers, each
// once, with RFC 1939 UIDs, and TOP reports only the messages asked for,
// each once.
func FuzzClientReplies(f *testing.F) {
	f.Add([]byte("+OK hi\r\n+OK\r\nUIDL\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n1 10\r\n.\r\n+OK\r\n1 abc\r\n.\r\n+OK\r\nx\r\n.\r\n"))
	f.Add([]byte("+OK\r\n-ERR no\r\n-ERR\r\n"))
	f.Add([]byte("+OK\r\n-ERR\r\n+OK\r\n-ERR pw-Secret-42 is not your password\r\n"))
	f.Add([]byte("+OK\r\n+OK\r\nPIPELINING\r\n.\r\n+OK\r\n+OK\r\n+OK 2 20\r\n+OK\r\n1 10\r\n1 10\r\n-3 5\r\n2 x\r\n.\r\n+OK\r\n1 a\r\n2 b c\r\n0 z\r\n.\r\n+OK\r\nSubject: a\r\n\r\n.\r\n+OK\r\n.\r\n"))
	f.Add([]byte("garbage\r\n"))
	const pass = "pw-Secret-42"
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
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("the client took %s against a closed connection", d)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// The debug lines go through the redactor, as mailmove's do: a
		// server may quote the password back.
		var debug bytes.Buffer
		c, err := Dial(ctx, "pipe", Options{TLS: TLSNone, Timeout: 200 * time.Millisecond, Debug: migrate.Redactor(&debug, "u", pass),
			Dialer: func(context.Context, string, string) (net.Conn, error) { return client, nil }})
		noSecret := func(what string, err error) {
			if err != nil && strings.Contains(err.Error(), pass) {
				t.Fatalf("%s: the password is in the error: %v", what, err)
			}
		}
		defer func() {
			if strings.Contains(debug.String(), pass) {
				t.Fatalf("the password is in the debug output: %q", debug.String())
			}
		}()
		if err != nil {
			return
		}
		defer c.Close()
		err = c.Auth("u", pass)
		noSecret("auth", err)
		if err != nil {
			return
		}
		infos, uids, err := c.ListAll()
		noSecret("list", err)
		seen := map[int]bool{}
		for _, in := range infos {
			if in.Num <= 0 || seen[in.Num] || in.Size < 0 {
				t.Fatalf("listing holds %+v (seen before: %v)", in, seen[in.Num])
			}
			seen[in.Num] = true
		}
		for n, u := range uids {
			if n <= 0 || len(u) == 0 || len(u) > 70 || strings.ContainsAny(u, " \t\r\n") {
				t.Fatalf("UIDL gives message %d the id %q", n, u)
			}
		}
		next := 0 // fn gets the index into nums, each once, in order
		c.TopHeaders([]int{1, 2}, func(i int, h []byte, err error) error {
			if i != next {
				t.Fatalf("TOP reported entry %d, want %d", i, next)
			}
			if len(h) > headerMax {
				t.Fatalf("TOP kept a %d-byte header", len(h))
			}
			next++
			return nil
		})
		if r, err := c.Retr(1); err == nil {
			io.Copy(io.Discard, r)
		}
	})
}
