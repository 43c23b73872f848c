package mime

import (
	"fmt"
	"strings"
	"testing"
)

// TestRepairToBounds: cases the fuzzer's small inputs cannot reach, where
// RepairTo's bounds show (lines past bufio's 64 KB, more than maxParts
// parts, a part header past partHeadMax): Repair sees the same structure.
func TestRepairToBounds(t *testing.T) {
	cases := map[string]string{}
	// 1. A line starting with the delimiter, then 70,000 blanks, then text:
	// no delimiter for Repair (text follows the blanks); the stream reads
	// 64 KB of blanks and takes it for one.
	cases["delimiter-then-blanks-then-text"] = "Subject: d\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst\x00\r\n--b" +
		strings.Repeat(" ", 70000) + "x\r\nsecond\x00\r\n--b--\r\n"
	// 2. More than maxParts parts, the last a nested multipart with a NUL.
	var sb strings.Builder
	sb.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n")
	for i := 0; i < 10050; i++ {
		fmt.Fprintf(&sb, "--o\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	sb.WriteString("--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nnul\x00here\r\n--i--\r\n--o--\r\n")
	cases["over-maxParts"] = sb.String()
	// 3. A part whose header is over partHeadMax, with a NUL in its body.
	cases["long-part-header"] = "Subject: h\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nX-Long: " +
		strings.Repeat("a", 300<<10) + "\r\n\r\nbody\x00nul\r\n--b--\r\n"
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			checkStream(t, name, []byte(in), RepairOptions{Date: repairDate})
		})
	}
}
