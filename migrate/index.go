package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/mailmove/mailmove/mime"
)

// IndexKey returns the cheap key by which a message is looked for in a
// destination folder: its Message-ID, or for a message without one, its
// Date, From and Subject. A key match is confirmed by size or content.
func IndexKey(h mime.Header) string {
	var s string
	if id := mime.MessageID(h); id != "" {
		s = "mid\x00" + id
	} else {
		norm := func(v string) string { return strings.Join(strings.Fields(v), " ") }
		s = "hdr\x00" + norm(h.Get("Date")) + "\x00" + norm(h.Get("From")) + "\x00" + norm(h.Get("Subject"))
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

type candidate struct {
	uid  uint32
	size int64
}

// indexKey is an IndexKey in binary: half the memory of its hex form.
type indexKey [16]byte

func keyOf(key string) indexKey {
	var k indexKey
	if n, err := hex.Decode(k[:], []byte(key)); err != nil || n != len(k) {
		sum := sha256.Sum256([]byte(key)) // not one of ours: still a key
		copy(k[:], sum[:])
	}
	return k
}

// folderIndex is what one destination folder holds, learnt once per run with
// one Scan: small per message (about 50 bytes), so 100,000 messages fit in a
// few megabytes.
type folderIndex struct {
	one  map[indexKey]candidate   // most keys name one message
	more map[indexKey][]candidate // the others, every candidate
	fps  map[uint32]string        // fingerprints fetched so far, by UID
	last uint32                   // the highest UID read
	read time.Time                // when it was last read
}

func newIndex() *folderIndex {
	return &folderIndex{one: map[indexKey]candidate{}, more: map[indexKey][]candidate{}, fps: map[uint32]string{}}
}

func buildIndex(ctx context.Context, d Destination, folder string) (*folderIndex, error) {
	idx := newIndex()
	return idx, idx.refresh(ctx, d, folder)
}

// refresh adds what the folder received since the index last read it: the
// messages with higher UIDs (another run's appends, the provider's new
// mail).
func (idx *folderIndex) refresh(ctx context.Context, d Destination, folder string) error {
	from := idx.last + 1
	if idx.last == 0 {
		from = 0
	}
	idx.read = time.Now()
	return d.Scan(ctx, folder, from, func(e Existing) error {
		idx.add(IndexKey(mime.ParseHeader(e.Header)), e.UID, e.Size)
		idx.last = max(idx.last, e.UID)
		return nil
	})
}

func (idx *folderIndex) add(key string, uid uint32, size int64) {
	k, c := keyOf(key), candidate{uid: uid, size: size}
	if l, ok := idx.more[k]; ok {
		idx.more[k] = append(l, c)
	} else if first, ok := idx.one[k]; ok {
		idx.more[k] = []candidate{first, c}
		delete(idx.one, k)
	} else {
		idx.one[k] = c
	}
}

func (idx *folderIndex) candidates(key string) []candidate {
	k := keyOf(key)
	if l, ok := idx.more[k]; ok {
		return l
	}
	if c, ok := idx.one[k]; ok {
		return []candidate{c}
	}
	return nil
}

// find returns the UID of a message in the folder with the same content.
// A Message-ID with the exact size is taken as a match; anything less is
// confirmed by fetching the candidate and comparing fingerprints.
func (idx *folderIndex) find(ctx context.Context, d Destination, folder, key string, hasMID bool, size int64, fp string) (uint32, bool, error) {
	cands := idx.candidates(key)
	if hasMID {
		for _, c := range cands {
			if c.size == size {
				return c.uid, true, nil
			}
		}
	}
	for _, c := range cands {
		if c.uid == 0 {
			continue // appended this run to a server without UIDPLUS
		}
		got, ok := idx.fps[c.uid]
		if !ok {
			f := mime.NewFingerprinter()
			if err := d.FetchBody(ctx, folder, c.uid, f); errors.Is(err, ErrNoMessage) {
				continue // gone since the folder was read
			} else if err != nil {
				return 0, false, err
			}
			got = f.Sum().String()
			idx.fps[c.uid] = got
		}
		if got == fp {
			return c.uid, true, nil
		}
	}
	return 0, false, nil
}
