package mailcheck

import "testing"

func TestKey(t *testing.T) {
	src := "From: Zo\xc3\xab Dupr\xc3\xa9 <zoe@example.org>\nSubject: R\xe9union \xe0 9h\nContent-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\n\nbody \xc3\xa9\n"
	same := []string{
		"From: Zo\xc3\xab Dupr\xc3\xa9 <zoe@example.org>\r\nSubject: R\xe9union \xe0 9h\r\nContent-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\n\r\nbody \xc3\xa9\r\n",
		"X-Mailmove-Repair: header-8bit; original kept by mailmove\r\nFrom: =?utf-8?q?Zo=C3=AB_Dupr=C3=A9?= <zoe@example.org>\r\n" +
			"Subject: =?iso-8859-1?q?R=E9union_=E0?= 9h\r\nContent-Type: text/plain; name*=utf-8''r%C3%A9sum%C3%A9.txt\r\n\r\nbody \xc3\xa9\r\n",
	}
	differ := []string{
		"X-Mailmove-Repair: header-8bit; original kept by mailmove\r\nFrom: =?utf-8?q?ZoX_Dupr=C3=A9?= <zoe@example.org>\r\n" +
			"Subject: =?iso-8859-1?q?R=E9union_=E0?= 9h\r\nContent-Type: text/plain; name*=utf-8''r%C3%A9sum%C3%A9.txt\r\n\r\nbody \xc3\xa9\r\n",
		"From: ZoX Dupr\xc3\xa9 <zoe@example.org>\r\nSubject: R\xe9union \xe0 9h\r\nContent-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\n\r\nbody \xc3\xa9\r\n",
		"X-Mailmove-Repair: nul; original kept by mailmove\r\nFrom: Zo\xc3\xab Dupr\xc3\xa9 <zoe@example.org>\r\nSubject: R\xe9union \xe0 9h\r\nContent-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\n\r\nbody \xc3\xa9\r\n",
		"From: Zo\xc3\xab Dupr\xc3\xa9 <zoe@example.org>\r\nSubject: R\xe9union \xe0 9h\r\nContent-Type: text/plain; name=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\n\r\nbody e\r\n",
	}
	want := Key([]byte(src))
	for i, s := range same {
		if Key([]byte(s)) != want {
			t.Errorf("same %d: key differs", i)
		}
	}
	for i, s := range differ {
		if Key([]byte(s)) == want {
			t.Errorf("differ %d: same key", i)
		}
	}
	if string(CRLF([]byte("a\r\r\nb\rc\n\nd"))) != "a\r\nb\r\nc\r\n\r\nd\r\n" {
		t.Error("CRLF")
	}
}
