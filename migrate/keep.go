package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DirKeeper keeps messages that could not be copied in a directory readable
// by the owner only: NAME.eml holds the message as read from the source,
// NAME.json the checkpoint record with the reason.
type DirKeeper struct{ Dir string }

// Keep implements Keeper.
func (k DirKeeper) Keep(rec Record, body *Body) (string, error) {
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return "", err
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, rec.ID)
	if len(name) > 100 {
		// Long IDs (mbox paths) keep a readable start and a hash of the
		// whole, so two never share a file.
		sum := sha256.Sum256([]byte(rec.ID))
		name = name[:60] + "-" + hex.EncodeToString(sum[:8])
	}
	eml := filepath.Join(k.Dir, name+".eml")
	if err := writeFile(eml, body.Open()); err != nil {
		return "", fmt.Errorf("keep %s: %w", rec.ID, err)
	}
	meta, _ := json.MarshalIndent(rec, "", "  ")
	if err := writeFile(filepath.Join(k.Dir, name+".json"), strings.NewReader(string(meta)+"\n")); err != nil {
		return "", fmt.Errorf("keep %s: %w", rec.ID, err)
	}
	return eml, nil
}

// writeFile writes atomically: a temporary file, fsynced, then renamed.
func writeFile(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".keep-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
