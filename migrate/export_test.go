package migrate_test

import (
	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/mime"
)

func fpOf(m []byte) string  { return mime.FingerprintBytes(m).String() }
func keyOf(m []byte) string { return migrate.IndexKey(mime.ParseHeader(m)) }
