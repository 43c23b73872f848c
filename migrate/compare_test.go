package migrate

import (
	"strings"
	"testing"
)

func TestCompareWriter(t *testing.T) {
	sent := "From: Zo\xc3\xab <zoe@example.org>\r\nSubject: x\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		name, stored string
		want         string // substring of the difference; "" for none
	}{
		{"same", sent, ""},
		{"cyrus X", strings.Replace(sent, "\xc3\xab", "XX", 1), `byte 8 (line 1, header): sent "\u00eb <zoe@example.org>", stored "XX <zoe@example.org>"`},
		{"body changed", strings.Replace(sent, "body", "bodY", 1), "(line 4, body)"},
		{"cut short", sent[:len(sent)-3], "stored (end of message)"},
		{"longer", sent + "X-Added: 1\r\n", `sent (end of message), stored "X-Added: 1"`},
	} {
		for _, chunk := range []int{1, 3, 1000} {
			cw := newCompareWriter(strings.NewReader(sent))
			for p := []byte(tc.stored); len(p) > 0; {
				n := min(chunk, len(p))
				cw.Write(p[:n])
				p = p[n:]
			}
			d := cw.result(int64(len(sent)))
			switch {
			case tc.want == "" && d != nil:
				t.Errorf("%s/%d: %v", tc.name, chunk, d)
			case tc.want != "" && (d == nil || !strings.Contains(d.String(), tc.want)):
				t.Errorf("%s/%d: got %v, want %q", tc.name, chunk, d, tc.want)
			}
		}
	}
}
