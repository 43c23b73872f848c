package dovecottest

import (
	"net"
	"os"
	"testing"
)

// TestRestart: Restart brings Dovecot back on the same ports.
func TestRestart(t *testing.T) {
	s, err := Start()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer s.Stop()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.IMAPS)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
