// Package profilegen writes mail-client folder sets for tests: a
// Thunderbird "Local Folders" directory of mbox files with Thunderbird's
// bookkeeping headers, from messages made by mailgen.
package profilegen

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailmove/mailmove/migrate/mbox"
)

// Filed is one message as a Thunderbird profile holds it.
type Filed struct {
	Folder  string    // source folder path, "/" between levels
	Msg     []byte    // the message without Thunderbird's bookkeeping headers
	Flags   []string  // the IMAP flags its X-Mozilla-Status and -Keys stand for, sorted
	Deleted bool      // expunged bit set: deleted but not compacted away
	Date    time.Time // the From_ line's date, to the second
	Spam    bool      // the provider's filter header marks it as spam
}

// Folders are the folders Thunderbird writes, with their share of
// the mail: the special ones, a non-ASCII name, and nesting in .sbd
// directories.
var Folders = []struct {
	Path  string
	Share int
}{
	{"Inbox", 40}, {"Sent", 10}, {"Junk", 8}, {"Trash", 4}, {"Drafts", 2},
	{"Archives/2023", 8}, {"Réunions", 8}, {"Work", 10}, {"Work/Projects/Alpha", 10},
}

// Thunderbird files msgs into a "Local Folders"-style directory the way
// Thunderbird does: one mbox per folder with "From - DATE" lines (local
// time), X-Mozilla-Status/-Status2/-Keys headers at the top of each message,
// subfolders in NAME.sbd/, and .msf index files beside. The flags and the
// folder of each message are drawn from seed. spam, when not nil, tells
// which messages mailgen marked as spam.
func Thunderbird(dir string, msgs [][]byte, spam []bool, seed uint64) ([]Filed, error) {
	r := rand.New(rand.NewPCG(seed, 7))
	total := 0
	for _, f := range Folders {
		total += f.Share
	}
	files := map[string]*mbox.Writer{}
	var handles []*os.File
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	var out []Filed
	base := time.Date(2019, 3, 1, 9, 0, 0, 0, time.Local)
	for i, m := range msgs {
		n := r.IntN(total)
		folder := Folders[0].Path
		for _, f := range Folders {
			if n < f.Share {
				folder = f.Path
				break
			}
			n -= f.Share
		}
		w := files[folder]
		if w == nil {
			parts := strings.Split(folder, "/")
			for j := range parts[:len(parts)-1] {
				parts[j] += ".sbd"
			}
			path := filepath.Join(append([]string{dir}, parts...)...)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, err
			}
			h, err := os.Create(path)
			if err != nil {
				return nil, err
			}
			handles = append(handles, h)
			os.WriteFile(path+".msf", []byte("// <!-- <mdb:mork:z v=\"1.4\"/> -->\n"), 0o644)
			w = mbox.NewWriter(h)
			files[folder] = w
		}
		var status uint16
		var flags []string
		for _, b := range []struct {
			bit  uint16
			p    float64
			flag string
		}{{0x0001, 0.7, `\Seen`}, {0x0002, 0.15, `\Answered`}, {0x0004, 0.08, `\Flagged`}, {0x1000, 0.05, "$Forwarded"}, {0x0008, 0.03, ""}} {
			if r.Float64() < b.p {
				status |= b.bit
				if b.flag != "" {
					flags = append(flags, b.flag)
				}
			}
		}
		keys := ""
		if r.Float64() < 0.05 {
			keys = []string{"$label1", "todo", "$label4 famille"}[r.IntN(3)]
			flags = append(flags, strings.Fields(keys)...)
		}
		slices.Sort(flags)
		eol := "\r\n"
		if !strings.Contains(string(m[:min(len(m), 200)]), "\r\n") {
			eol = "\n"
		}
		head := fmt.Sprintf("X-Account-Key: account1%sX-Mozilla-Status: %04x%sX-Mozilla-Status2: 00000000%sX-Mozilla-Keys: %-80s%s",
			eol, status, eol, eol, keys, eol)
		date := base.Add(time.Duration(i)*53*time.Minute + time.Duration(r.IntN(60))*time.Second)
		if err := w.Write(mbox.FromLine("-", date), append([]byte(head), m...)); err != nil {
			return nil, err
		}
		out = append(out, Filed{Folder: folder, Msg: m, Flags: flags, Deleted: status&0x0008 != 0, Date: date, Spam: spam != nil && spam[i]})
	}
	for _, w := range files {
		if err := w.Flush(); err != nil {
			return nil, err
		}
	}
	os.WriteFile(filepath.Join(dir, "msgFilterRules.dat"), []byte("version=\"9\"\nlogging=\"no\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Templates"), nil, 0o644) // an empty folder
	return out, nil
}
