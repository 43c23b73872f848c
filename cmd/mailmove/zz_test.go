package main
import ("bufio";"bytes";"crypto/tls";"fmt";"github.com/mailmove/mailmove/internal/mailcheck";"github.com/mailmove/mailmove/internal/dovecottest";"github.com/mailmove/mailmove/internal/mailserver";"testing";"path/filepath";"github.com/mailmove/mailmove/internal/conformance";"os";"strings")
func TestZZCyrus(t *testing.T) {
	src := server(t, "cyrus"); dst := server(t, "dovecot")
	corpus := conformance.Corpus(901, 0)
	su, _ := src.AddUser(); du, _ := dst.AddUser()
	var raw [][]byte; for _, c := range corpus[:1] { raw = append(raw, c.Data) }
	src.Seed(su, raw)
	ca := filepath.Join(t.TempDir(), "ca.pem"); a, _ := os.ReadFile(src.CAFile()); b, _ := os.ReadFile(dst.CAFile()); os.WriteFile(ca, append(a, b...), 0o600)
	code, out := harness.Run(t, []string{"MAILMOVE_FROM_PASSWORD="+su.Password, "MAILMOVE_TO_PASSWORD="+du.Password}, "--ca-file", ca, "--state", filepath.Join(t.TempDir(),"s.db"), "--from", "pop3s://"+su.Name+"@"+src.Addrs().POP3S, "--to", "imaps://"+du.Name+"@"+dst.Addrs().IMAPS, "-v")
	t.Logf("%d %s", code, out)
	p := pair{srv: dovecot, dst: dovecottestUser(du)}
	for _, s := range p.fetchAll(t, p.dst, "INBOX") { t.Logf("%q", strings.SplitN(string(s.body), "\r\n\r\n", 2)[0]) }
	t.Logf("src %q", strings.SplitN(string(raw[0]), "\r\n\r\n", 2)[0])
}
func dovecottestUser(u interface{}) dovecottest.User { m := u.(mailserver.User); return dovecottest.User{Name: m.Name, Password: m.Password, Home: m.Home} }
func TestZZCyrus2(t *testing.T) {
	src := server(t, "cyrus")
	corpus := conformance.Corpus(901, 0)
	su, _ := src.AddUser()
	src.Seed(su, [][]byte{corpus[3].Data})
	cfg, _ := mailserver.TLSConfig(src.CAFile())
	c, err := tls.Dial("tcp", src.Addrs().POP3S, cfg); if err != nil { t.Fatal(err) }
	br := bufio.NewReader(c)
	rd := func() string { l, _ := br.ReadString('\n'); return l }
	rd(); fmt.Fprintf(c, "USER %s\r\n", su.Name); rd(); fmt.Fprintf(c, "PASS %s\r\n", su.Password); t.Log(rd())
	fmt.Fprintf(c, "RETR 1\r\n"); t.Log(rd())
	var got []byte
	for { l := rd(); if l == ".\r\n" || l == "" { break }; got = append(got, []byte(strings.TrimPrefix(l, "."))...) }
	want := mailcheck.CRLF(corpus[3].Data)
	t.Logf("equal %v %d %d", bytes.Equal(got, want), len(got), len(want))
	for i := range min(len(got), len(want)) { if got[i] != want[i] { t.Logf("at %d: %q vs %q", i, got[i:min(i+60,len(got))], want[i:min(i+60, len(want))]); break } }
}
