// Package mime holds the pure, protocol-free message logic of mailmove: reading
// header fields, fingerprinting a message so it can be recognised across
// sources and runs, finding its date of arrival, and normalising line endings.
//
// Every function here takes bytes and returns values; none does I/O beyond the
// reader or writer it is handed, and none panics on any input.
package mime
