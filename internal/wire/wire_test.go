package wire

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("short\r\n"+strings.Repeat("x", 100)+"\nlast"), 16)
	if l, err := ReadLine(br, 200); l != "short" || err != nil {
		t.Fatalf("%q %v", l, err)
	}
	if l, err := ReadLine(br, 200); l != strings.Repeat("x", 100) || err != nil {
		t.Fatalf("a line longer than the buffer: %q %v", l, err)
	}
	if _, err := ReadLine(br, 200); err != io.EOF {
		t.Fatalf("no line break before the end: %v", err)
	}
	br = bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 1000)+"\r\n"), 16)
	if _, err := ReadLine(br, 200); err == nil {
		t.Fatal("a line over the limit was read")
	}
	if got := Clip(strings.Repeat("z", 500)); len(got) != 123 {
		t.Fatalf("Clip kept %d bytes", len(got))
	}
}
