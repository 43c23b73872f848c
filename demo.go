// Package mailmove holds the project's embedded demo mailbox. The tool is in
// cmd/mailmove; the domain in migrate.
package mailmove

import "embed"

// DemoMailbox is the POP3 mailbox `mailmove demo` serves: testdata/demo/*.eml,
// in name order.
//
//go:embed testdata/demo/*.eml
var DemoMailbox embed.FS
