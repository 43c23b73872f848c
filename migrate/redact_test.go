package migrate

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	var out bytes.Buffer
	w := Redactor(&out, "jean", "s3cr3t!")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00jean\x00s3cr3t!"))
	for _, chunk := range []string{
		"C: a1 LOGIN jean \"s3cr", "3t!\"\r\n",
		"C: a2 AUTHENTICATE PLAIN " + plain + "\r\n",
		plain + "\r\n",
		"PASS s3cr3t!\r\n", "AUTH PLAIN " + plain + "\r\n",
		"S: a1 OK logged in\r\n",
	} {
		w.Write([]byte(chunk))
	}
	got := out.String()
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, plain) {
		t.Fatalf("a secret got through:\n%s", got)
	}
	if !strings.Contains(got, "S: a1 OK logged in") || strings.Count(got, "***") < 5 {
		t.Fatalf("output:\n%s", got)
	}
}
