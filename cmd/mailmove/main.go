// Command mailmove moves a whole mailbox from POP3 or mbox files into IMAP folders,
// resumably. This file only wires: flags and configuration, logging,
// signals, and the mapping of outcomes to exit codes.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailmove/mailmove/migrate"
	"github.com/mailmove/mailmove/migrate/imap"
	"github.com/mailmove/mailmove/migrate/mbox"
	"github.com/mailmove/mailmove/migrate/pop3"
	"github.com/mailmove/mailmove/store"
)

// Exit codes, documented in the README.
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitIncomplete  = 3
	exitAuth        = 4 // a server refused the login
	exitFull        = 5 // the destination account is full
	exitCert        = 6 // a server's certificate is not trusted
	exitInterrupted = 130
)

var version = "0.1.0-dev"

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		// A long migration should not hold twice what it uses (Go's GC
		// default): collect harder as the heap nears 36 MB. 100,000
		// messages need about 25 MB live.
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:]))
}

// memoryLimit is the heap size the garbage collector works to stay under:
// a soft limit, so a mailbox that needs more still works.
const memoryLimit = 36 << 20

func run(args []string) int {
	if len(args) > 0 && args[0] == "demo" {
		return demo(args[1:])
	}
	if len(args) > 0 && args[0] == "batch" {
		ctx, stop := signalContext()
		defer stop()
		return batch(args[1:], os.Stdout, os.Stderr, ctx)
	}
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr}
	if len(args) > 0 && args[0] == "quarantine" {
		if len(args) >= 2 && isHelp(args[1]) {
			fmt.Fprint(os.Stdout, quarantineUsage)
			return exitOK
		}
		if len(args) < 2 || args[1] != "list" && args[1] != "retry" {
			fmt.Fprintln(os.Stderr, "mailmove: usage: mailmove quarantine list|retry --from SRC --to DST [--state FILE]")
			return exitUsage
		}
		m.quarantine = args[1]
		args = args[2:]
	}
	if len(args) > 0 && (args[0] == "status" || args[0] == "verify" || args[0] == "undo") {
		m.command, args = args[0], args[1:]
	}
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(os.Stderr, "mailmove:", err)
		return exitUsage
	}
	if m.showVersion {
		fmt.Fprintln(m.Stdout, "mailmove", version)
		return exitOK
	}
	ctx, stop := signalContext()
	defer stop()
	sum, err := m.Run(ctx)
	return exitCode(m.Stderr, sum, err)
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\nmailmove: interrupted: finishing the message in flight and saving state (again to quit at once)")
		cancel()
		<-sigs
		os.Exit(exitInterrupted)
	}()
	return ctx, cancel
}

// hostMismatch names the hosts a certificate is for, when err is a
// certificate issued for another host than the one given.
func hostMismatch(err error) string {
	var h x509.HostnameError
	if !errors.As(err, &h) || h.Certificate == nil {
		return ""
	}
	names := h.Certificate.DNSNames
	for _, ip := range h.Certificate.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{h.Certificate.Subject.CommonName}
	}
	return strings.Join(names, ", ")
}

// exitCode decides the process's outcome in one place.
func exitCode(w io.Writer, sum migrate.Summary, err error) int {
	// "State saved" only when a run wrote it: an error before (a wrong
	// flag, a state file that cannot be written) saved nothing.
	saved, again := "", "run the same command again"
	if sum.Run != "" && !sum.DryRun {
		saved, again = " State saved.", "state saved: run the same command again to carry on"
	}
	var un *migrate.Unreachable
	var wrong *migrate.WrongServer
	var ue *usageError
	var fatal *migrate.Fatal
	var auth *migrate.AuthError
	var inc *incomplete
	var damaged *store.DamagedError
	var pairErr *store.PairError
	var stErr *stateError
	switch {
	case errors.As(err, &inc):
		fmt.Fprintln(w, "mailmove:", err)
		return exitIncomplete
	case err == nil && sum.Altered > 0:
		fmt.Fprintf(w, "mailmove: the destination server stored %d message(s) otherwise than they were sent: they are listed above and in the report, and their originals are kept beside the state\n", sum.Altered)
		if sum.Failed > 0 {
			fmt.Fprintf(w, "mailmove: %d message(s) could not be copied\n", sum.Failed)
		}
		return exitIncomplete
	case err == nil && sum.Missing > 0:
		fmt.Fprintf(w, "mailmove: %d message(s) recorded as copied are no longer at the destination (deleted there?): listed above; --recopy-missing copies them again\n", sum.Missing)
		return exitIncomplete
	case err == nil && sum.Failed > 0:
		fmt.Fprintf(w, "mailmove: %d message(s) could not be copied: see the list above (each is kept in the quarantine; once the cause is fixed, `mailmove quarantine retry` with the same --from and --to copies them)\n", sum.Failed)
		return exitIncomplete
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		var u *untilReached
		if errors.As(err, &u) {
			fmt.Fprintf(w, "mailmove: %v: stopped cleanly; %s\n", err, again)
		} else {
			fmt.Fprintf(w, "mailmove: stopped; %s\n", again)
		}
		return exitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintln(w, "mailmove:", err)
		return exitUsage
	case errors.As(err, &pairErr):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: each source and destination pair needs its own state file: leave --state (and state in the config file) out, "+
			"and mailmove keeps one per pair, or name another file. Nothing was copied.")
		return exitUsage
	case errors.As(err, &damaged):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: a run without --dry-run sets it aside (it is kept) and begins a new state; the messages already at the destination are recognised there")
		return exitFatal
	case errors.Is(err, migrate.ErrLocked):
		fmt.Fprintln(w, "mailmove:", err, "(wait for it to finish, or stop it first)")
		return exitFatal
	case hostMismatch(err) != "":
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintf(w, "mailmove: the server's certificate is for %s, not for the host name given: use that name (the provider's documented server name) in --from/--to.%s\n", hostMismatch(err), saved)
		return exitCert
	case migrate.CertError(err):
		fmt.Fprintln(w, "mailmove:", err)
		if issuer := migrate.CertIssuer(err); issuer != "" {
			fmt.Fprintf(w, "mailmove: the certificate was issued by %q.\n", issuer)
		}
		fmt.Fprintln(w, "mailmove: the server's certificate is not trusted. If it is your own server, pass its CA with --ca-file (once for each server: --ca-file source-ca.pem --ca-file destination-ca.pem). "+
			"Antivirus products that scan mail (Bitdefender, Kaspersky, Avast and the like) replace certificates with their own: "+
			"turn off their mail scanning or trust their certificate with --ca-file."+saved)
		return exitCert
	case errors.As(err, &auth):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: stopped without trying again, so the account is not locked for repeated failures. "+
			"Check the password (and, at Orange or La Poste, that the account is not blocked), then run again."+saved)
		return exitAuth
	case errors.Is(err, migrate.ErrFull):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintf(w, "mailmove: stopped: %d message(s) copied; the rest are still at the source. Free space at the destination, then run again.%s\n", sum.Copied, saved)
		return exitFull
	case errors.As(err, &wrong):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: stopped without retrying: fix the address or the port, then run again."+saved)
		return exitFatal
	case errors.As(err, &un):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: tried three times, then stopped: check the host name and the port, and this computer's connection; "+
			"if they are right the server may be down (Orange's and La Poste's have been for hours): run the same command later."+saved)
		return exitFatal
	case errors.As(err, &stErr) || errors.Is(err, fs.ErrPermission):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: mailmove must be able to write its state, quarantine and originals beside it: choose a place you can write with --state FILE. Nothing was copied.")
		return exitFatal
	case errors.As(err, &fatal):
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: stopped without retrying."+saved)
		return exitFatal
	default:
		fmt.Fprintln(w, "mailmove:", err)
		fmt.Fprintln(w, "mailmove: "+again)
		return exitFatal
	}
}

// Main is one invocation of mailmove. Tests call ParseFlags and Run directly.
type Main struct {
	Stdout, Stderr io.Writer

	from, to       string
	configPath     string
	statePath      string
	folder         string
	reportPath     string
	caFiles        fileList
	dryRun         bool
	keepDuplicates bool
	allowPlaintext bool
	unseen         bool
	includeDeleted bool
	mboxFormat     string
	folderMap      map[string]string
	spam           string
	junkFolder     string
	spamGuard      float64
	spamTrust      bool
	reviewFolder   string
	encodeHeaders  bool
	foldLines      bool
	closeParts     bool
	maxMessage     string
	recopyMissing  bool
	sharedWith     string // another run copying into the same account now, from this source
	showRepairs    bool
	quarantine     string // "list" or "retry": the quarantine subcommands
	command        string // status, verify or undo
	debugWire      bool
	untilEvent     chan struct{} // closed by a test: --until's time has come
	rate           string
	until          string
	maxConns       int
	connections    int
	wireOnce       sync.Once
	wire           io.Writer // m.Stderr, shared by every --debug-wire redactor
	deleteAfter    bool
	undoRun        string
	yes            bool
	content        bool
	Stdin          io.Reader // for confirmations; os.Stdin when nil
	batchJob       bool      // one mailbox of a batch: passwords only from its own sources
	extraObserver  migrate.Observer
	verbose, quiet bool
	showVersion    bool
	timeout        time.Duration

	cfg *Config
}

const usageText = `mailmove moves a whole mailbox from POP3, or from mbox folders (Thunderbird,
mutt, pine), into IMAP folders, resumably.

Usage:
  mailmove --from SRC --to DST [flags]
  mailmove quarantine list|retry --from SRC --to DST [flags]
  mailmove status --state FILE  (or --from SRC --to DST)
  mailmove verify --from SRC --to DST [--content] [--report FILE]
  mailmove undo --run ID --from SRC --to DST [--yes]
  mailmove batch FILE [--jobs N] [--shard K/N] [--report FILE] [-- flags for every mailbox]
  mailmove demo

SRC and DST are URLs (pop3://, pop3s://, imap://, imaps://USER@HOST[:PORT]) or
names of endpoints in the config file; SRC can also be mbox:PATH, one mbox
file or a directory of them (a Thunderbird "Local Folders", a mutt ~/Mail).

Passwords never go on the command line: set MAILMOVE_FROM_PASSWORD and
MAILMOVE_TO_PASSWORD, give password_file or password_command in the config
file, or type them when asked.

Examples:
  mailmove --from pop --to imap                    # endpoints from the config file
  mailmove --from pop3s://jean.dupont@pop.orange.fr \
           --to imaps://jean.dupont@imap.example.net --dry-run
  mailmove --from pop --to imap --report night.json --folder Orange
  mailmove --from "mbox:$HOME/.thunderbird/x.default/Mail/Local Folders" \
           --to imaps://jean.dupont@imap.example.net --folder-map Archives=Old

Exit codes: 0 all copied, 1 fatal error, 2 usage or configuration error,
3 finished but some messages were not copied, 4 login refused, 5 destination
full, 6 certificate not trusted, 130 interrupted or --until reached (run
again to resume).

Flags:
`

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

const quarantineUsage = `Usage:
  mailmove quarantine list --from SRC --to DST [--state FILE]
  mailmove quarantine retry --from SRC --to DST [--state FILE]

The quarantine keeps, beside the state, every message the destination
refused, with the reason (NAME.eml and NAME.json). list shows them; retry
copies them again, once the cause is fixed (quota freed, a .eml edited), to
the folder chosen for each, and empties the quarantine of what got through.

Example:
  mailmove quarantine list --from pop --to imap

Flags:
`

var commandUsage = map[string]string{
	"status": `Usage:
  mailmove status --state FILE
  mailmove status --from SRC --to DST

Shows where a migration stands: progress and counts per folder while it
runs (from its status file), and what the state records once it is over.

Example:
  mailmove status --from pop --to imap

Flags:
`,
	"verify": `Usage:
  mailmove verify --from SRC --to DST [--content] [--report FILE]

Lists the source again and checks every message against the state and the
destination: per folder, what the source has, what is recorded as done and
what is there now, and every missing message by name. --content also fetches
every message mailmove copied and compares it byte for byte with what
mailmove sends for the source's message (line endings aside; a repaired
message with its repairs made again), naming every difference. Writes nothing; exits 0 only
when everything is there (and, with --content, as sent), 3 otherwise.

Examples:
  mailmove verify --from pop --to imap
  mailmove verify --from pop --to imap --content --report verify.json

Flags:
`,
	"undo": `Usage:
  mailmove undo --from SRC --to DST            (lists the runs)
  mailmove undo --run ID --from SRC --to DST [--yes]

Removes from the destination exactly what run ID appended, by the UIDs the
server gave, after confirming each is still that message; asks first. The
next run copies those messages again.

Example:
  mailmove undo --from pop --to imap --run 20261201T220000Z-1a2b3c4d

Flags:
`,
}

// commandFlags are the flags each command uses, for its help.
var commandFlags = map[string][]string{
	"status":     {"from", "to", "config", "state"},
	"verify":     {"from", "to", "config", "state", "content", "report", "ca-file", "allow-plaintext", "timeout", "debug-wire", "folder", "folder-map", "v", "verbose"},
	"undo":       {"from", "to", "config", "state", "run", "yes", "dry-run", "ca-file", "allow-plaintext", "timeout", "debug-wire"},
	"quarantine": {"from", "to", "config", "state", "ca-file", "allow-plaintext", "timeout", "debug-wire", "dry-run", "v", "verbose", "quiet"},
}

// ParseFlags reads the command line and the config file.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("mailmove", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	helpAsked := slices.ContainsFunc(args, isHelp)
	fs.Usage = func() {
		if !helpAsked {
			return // a mistyped flag: said by the error, with where help is
		}
		switch {
		case m.quarantine != "":
			fmt.Fprint(fs.Output(), quarantineUsage)
		case m.command != "":
			fmt.Fprint(fs.Output(), commandUsage[m.command])
		default:
			fmt.Fprint(fs.Output(), usageText)
		}
		only := commandFlags[m.command]
		if m.quarantine != "" {
			only = commandFlags["quarantine"]
		}
		if only == nil {
			fs.PrintDefaults()
			return
		}
		// A command's help shows the flags it uses.
		all := fs
		fs = flag.NewFlagSet(all.Name(), flag.ContinueOnError)
		fs.SetOutput(all.Output())
		all.VisitAll(func(f *flag.Flag) {
			if slices.Contains(only, f.Name) {
				fs.Var(f.Value, f.Name, f.Usage)
			}
		})
		fs.PrintDefaults()
		fs = all
	}
	if len(args) > 0 && isHelp(args[0]) {
		fs.SetOutput(m.Stdout) // asked for: not an error
	}
	fs.StringVar(&m.from, "from", "", "source: URL or config endpoint name")
	fs.StringVar(&m.to, "to", "", "destination: URL or config endpoint name")
	fs.StringVar(&m.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/mailmove/config.toml)")
	fs.StringVar(&m.statePath, "state", "", "checkpoint file (default one per source and destination under $XDG_STATE_HOME/mailmove/)")
	fs.StringVar(&m.folder, "folder", "", "destination folder for POP3 mail or a single mbox file, created if missing (default INBOX)")
	m.folderMap = map[string]string{}
	fs.Func("folder-map", "OLD=NEW: put source folder OLD (and its subfolders) in destination folder NEW, levels separated by / (repeatable)", func(v string) error {
		old, dst, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(old) == "" || strings.TrimSpace(dst) == "" {
			return fmt.Errorf("want OLD=NEW, got %q", v)
		}
		m.folderMap[strings.TrimSpace(old)] = strings.TrimSpace(dst)
		return nil
	})
	fs.BoolVar(&m.includeDeleted, "include-deleted", false, "mbox: also copy messages the mail client marked deleted, flagged \\Deleted")
	fs.StringVar(&m.spam, "spam", "", "what a spam verdict does: route (to the junk folder, flagged $Junk; the default), flag ($Junk only) or ignore")
	fs.StringVar(&m.junkFolder, "junk-folder", "", "destination folder for spam (default: the folder with the \\Junk attribute, else Junk, Spam...)")
	fs.Float64Var(&m.spamGuard, "spam-guard", 0, "largest share of a folder that filter headers alone may send to junk (default 0.5)")
	fs.BoolVar(&m.spamTrust, "spam-trust-headers", false, "act on filter headers even when they mark most of a folder as spam")
	fs.StringVar(&m.reviewFolder, "review-folder", "", "folder for readable stand-ins of XML records that held no mail (default mailmove-review)")
	fs.BoolVar(&m.encodeHeaders, "encode-headers", false, "RFC 2047-encode 8-bit header bytes up front (default: only when the server refuses them)")
	fs.BoolVar(&m.foldLines, "fold-long-lines", false, "re-encode lines over 998 octets up front, as Exchange needs (default: only when the server refuses them)")
	fs.BoolVar(&m.closeParts, "close-multipart", false, "add the missing end of multipart messages cut short up front (default: only when the server refuses them)")
	fs.BoolVar(&m.showRepairs, "show-repairs", false, "with --dry-run or -v: show each repair's header fields before and after")
	fs.BoolVar(&m.deleteAfter, "delete-after-verify", false, "POP3: after the copy, delete from the server the messages verified at the destination (off by default)")
	fs.StringVar(&m.undoRun, "run", "", "undo: the run whose appended messages to remove (see the report or the output)")
	fs.BoolVar(&m.yes, "yes", false, "undo: do not ask for confirmation")
	fs.BoolVar(&m.content, "content", false, "verify: also fetch every copied message and compare it byte for byte with what mailmove sends for the source's (repairs included)")
	fs.BoolVar(&m.debugWire, "debug-wire", false, "print the protocol exchanges on stderr (credentials replaced by ***, message content left out for POP3)")
	fs.StringVar(&m.rate, "rate", "", "at most this many messages and/or bytes per second to the destination: 5, 2MB or 5,2MB")
	fs.StringVar(&m.until, "until", "", "stop cleanly at this time of day (HH:MM, local time), as Ctrl-C does; run again to carry on")
	fs.IntVar(&m.connections, "connections", 4, "IMAP connections appending in parallel (besides the one that lists and checks)")
	fs.IntVar(&m.maxConns, "max-connections", 0, "connections per server at most, all included (default: the provider's known limit, else no cap)")
	fs.StringVar(&m.maxMessage, "max-message-size", "", "POP3: largest message a server may send, e.g. 2G (default 1G; a message larger than its announced size allows fails alone)")
	fs.StringVar(&m.mboxFormat, "mbox-format", "", "mbox flavour: auto, mboxrd, mboxo, mboxcl or mboxcl2 (default auto)")
	fs.StringVar(&m.reportPath, "report", "", "write a JSON report of every message to this file")
	fs.Var(&m.caFiles, "ca-file", "PEM file of extra trusted certificate authorities (may be given more than once: one for the source's server, one for the destination's)")
	fs.BoolVar(&m.dryRun, "dry-run", false, "decide everything, change nothing: print what would be copied")
	fs.BoolVar(&m.recopyMissing, "recopy-missing", false, "copy again what an earlier run copied but the destination no longer holds (deleted there; verify lists them)")
	fs.BoolVar(&m.keepDuplicates, "keep-duplicates", false, "copy messages even when the destination already holds them")
	fs.BoolVar(&m.allowPlaintext, "allow-plaintext", false, "allow tls = none (passwords sent in clear: trusted networks only)")
	fs.BoolVar(&m.unseen, "unseen", false, "leave POP3 messages unread (default: marked \\Seen, as a POP3 client has read them)")
	fs.DurationVar(&m.timeout, "timeout", 2*time.Minute, "give up on a server silent for this long")
	fs.BoolVar(&m.verbose, "v", false, "print every message's decision")
	fs.BoolVar(&m.verbose, "verbose", false, "same as -v")
	fs.BoolVar(&m.quiet, "quiet", false, "print only errors and the summary")
	fs.BoolVar(&m.showVersion, "version", false, "print the version")
	if !helpAsked {
		fs.SetOutput(io.Discard) // the error is returned, not printed twice
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// The help is a command away, not a hundred lines in the way.
		name := "mailmove"
		if m.command != "" {
			name += " " + m.command
		}
		return usagef("%v (run %s --help for the options)", err, name)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if m.showVersion {
		return nil
	}
	path, explicit := m.configPath, m.configPath != ""
	if !explicit {
		path = defaultConfigPath()
	}
	cfg, err := loadConfig(path, explicit)
	if err != nil {
		return err
	}
	m.cfg = cfg
	if m.folder == "" {
		m.folder = cfg.Folder
	}
	if len(m.caFiles) == 0 && cfg.CAFile != "" {
		m.caFiles = fileList{expandHome(cfg.CAFile)}
	}
	if m.statePath == "" {
		m.statePath = expandHome(cfg.State)
	}
	m.allowPlaintext = m.allowPlaintext || cfg.AllowPlaintext
	m.includeDeleted = m.includeDeleted || cfg.IncludeDeleted
	if m.mboxFormat == "" {
		m.mboxFormat = cfg.MboxFormat
	}
	m.spam = cmp.Or(m.spam, cfg.Spam)
	m.junkFolder = cmp.Or(m.junkFolder, cfg.JunkFolder)
	m.spamGuard = cmp.Or(m.spamGuard, cfg.SpamGuard)
	m.spamTrust = m.spamTrust || cfg.SpamTrust
	m.reviewFolder = cmp.Or(m.reviewFolder, cfg.ReviewFolder)
	m.encodeHeaders = m.encodeHeaders || cfg.EncodeHeaders
	m.foldLines = m.foldLines || cfg.FoldLongLines
	m.closeParts = m.closeParts || cfg.CloseMultipart
	if _, err := migrate.ParseSpamPolicy(m.spam); err != nil {
		return usagef("--spam: %v", err)
	}
	if m.maxConns < 0 || m.connections < 0 {
		return usagef("--connections and --max-connections must be 0 or more")
	}
	if m.timeout <= 0 {
		return usagef("--timeout must be more than 0 (it is how long a silent server is waited for)")
	}
	if _, err := parseSize(m.maxMessage); err != nil {
		return usagef("--max-message-size: %v", err)
	}
	if _, _, err := parseRate(m.rate); err != nil {
		return usagef("--rate: %v", err)
	}
	if _, err := untilTime(m.until, time.Now()); err != nil {
		return usagef("--until: %v", err)
	}
	if m.spamGuard < 0 || m.spamGuard > 1 {
		return usagef("--spam-guard must be between 0 and 1 (a share of the folder), not %v", m.spamGuard)
	}
	for k, v := range cfg.FolderMap {
		if _, set := m.folderMap[k]; !set {
			m.folderMap[k] = v
		}
	}
	return nil
}

func (m *Main) tlsConfig(host string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range m.caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("--ca-file: %v", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--ca-file %s: no PEM certificate in it", f)
		}
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}

// Run performs the migration (or the dry-run) and returns its summary.
func (m *Main) Run(ctx context.Context) (migrate.Summary, error) {
	var sum migrate.Summary
	if m.command == "status" && m.statePath != "" {
		return sum, m.showStatus(m.Stdout, m.statePath)
	}
	from, err := m.cfg.resolve("from", m.from)
	if err != nil {
		return sum, err
	}
	to, err := m.cfg.resolve("to", m.to)
	if err != nil {
		return sum, err
	}
	if from.Type != "pop3" && from.Type != "mbox" {
		return sum, usagef("--from must be a POP3 account (pop3:// or pop3s://) or mbox:PATH")
	}
	if to.Type != "imap" {
		return sum, usagef("--to must be an IMAP account (imap:// or imaps://)")
	}
	if m.deleteAfter && from.Type != "pop3" {
		return sum, usagef("--delete-after-verify is for POP3 sources: mailmove never changes mbox files")
	}
	for _, e := range []Endpoint{from, to} {
		if e.TLS == "none" && !m.allowPlaintext {
			return sum, usagef("%s on %s has tls = none: the password would cross the network in clear; add --allow-plaintext if the network is trusted", e.User, e.Host)
		}
		if e.TLS == "none" {
			fmt.Fprintf(m.Stderr, "warning: %s: no TLS; the password and mail cross the network in clear\n", e.addr())
		}
	}
	statePath := m.statePath
	if statePath == "" {
		statePath = stateFile(from, to)
	}
	if m.quarantine == "list" {
		return sum, m.listQuarantine(statePath)
	}
	if m.command == "status" {
		return sum, m.showStatus(m.Stdout, statePath)
	}
	if m.quarantine == "retry" {
		if items, err := migrate.ListQuarantine(quarantineDir(statePath)); err == nil && len(items) == 0 {
			fmt.Fprintf(m.Stdout, "the quarantine (%s) is empty: nothing to retry\n", quarantineDir(statePath))
			return sum, nil
		}
	}
	var src migrate.Source = &migrate.QuarantineSource{Dir: quarantineDir(statePath)}
	folderMap := m.folderMap
	if m.quarantine != "retry" && m.command != "undo" {
		// (the quarantine is read locally: no source password needed)
		if src, folderMap, err = m.source(ctx, from); err != nil {
			return sum, err
		}
	}
	defer src.Close()
	var toPass string
	if to.Auth == "" {
		if toPass, err = to.password(ctx, m.envVar("MAILMOVE_TO_PASSWORD")); err != nil {
			return sum, err
		}
	}
	toTLS, err := m.tlsConfig(to.Host)
	if err != nil {
		return sum, err
	}

	if m.command == "verify" {
		m.dryRun = true // read-only: EXAMINE, the state opened read-only
	}
	var cp migrate.Checkpoint
	pair := [2]string{identity(from), identity(to)}
	if !m.dryRun {
		// One run per pair at a time, whatever state file each uses.
		lock, err := store.LockPair(defaultStateDir(), pair[0], pair[1], statePath)
		if err != nil {
			return sum, err
		}
		defer lock.Release()
		// Another source copying into the same account now: its copies
		// are looked for as this run goes, so none is doubled.
		acct, holder, err := store.LockAccount(defaultStateDir(), pair[1], pair[0])
		if err != nil {
			return sum, err
		}
		defer acct.Release()
		if acct == nil {
			m.sharedWith = holder
		}
	}
	switch st, err := os.Stat(statePath); {
	case m.dryRun && errors.Is(err, os.ErrNotExist):
		cp = migrate.DryRunCheckpoint(nil)
	case m.dryRun:
		if st.IsDir() {
			return sum, usagef("--state %s is a directory", statePath)
		}
		s, err := store.Open(statePath, true)
		if err != nil {
			return sum, err
		}
		if err := s.Claim(pair[0], pair[1]); err != nil {
			s.Close()
			return sum, err
		}
		cp = migrate.DryRunCheckpoint(s)
	default:
		s, err := store.Open(statePath, false)
		var pe *fs.PathError
		if errors.As(err, &pe) && !errors.Is(err, migrate.ErrLocked) {
			return sum, &stateError{path: statePath, err: err}
		}
		if err != nil {
			return sum, err
		}
		if err := s.Claim(pair[0], pair[1]); err != nil {
			s.Close()
			return sum, err
		}
		cp = s
	}
	defer cp.Close()

	var dst migrate.Destination = imap.New(imap.Config{
		Addr: to.addr(), User: to.User,
		Debug:     m.wireLog(to.User, toPass),
		Password:  func() (string, error) { return toPass, nil },
		Mechanism: to.Auth,
		Token:     func() (string, error) { return to.token(ctx) },
		UTF8:      !m.encodeHeaders, // --encode-headers: always encoded, even where UTF8=ACCEPT would take them
		TLS:       imapMode(to.TLS),
		TLSConfig: toTLS,
		Timeout:   m.timeout,
		ReadOnly:  m.dryRun,
	})
	defer dst.Close()
	if m.dryRun {
		dst = migrate.DryRun(dst)
	}
	msgRate, byteRate, _ := parseRate(m.rate)
	dst = migrate.Throttle(dst, msgRate, byteRate)
	if m.until != "" {
		at, _ := untilTime(m.until, time.Now())
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		reached := func() { cancel(&untilReached{m.until}) }
		if m.untilEvent != nil {
			// A test's event stands for the time of day.
			go func() {
				select {
				case <-m.untilEvent:
					reached()
				case <-ctx.Done():
				}
			}()
		} else {
			timer := time.AfterFunc(time.Until(at), reached)
			defer timer.Stop()
		}
		defer cancel(nil)
		if !m.quiet {
			fmt.Fprintf(m.Stderr, "mailmove: will stop cleanly at %s (--until)\n", at.Format("Mon 15:04"))
		}
	}

	if m.command == "verify" {
		return sum, m.verify(ctx, src, dst, cp)
	}
	if m.command == "undo" {
		return sum, m.undo(ctx, dst, cp)
	}
	spamPolicy, _ := migrate.ParseSpamPolicy(m.spam)
	obs, finish, err := m.observers()
	if err != nil {
		return sum, err
	}
	runID := newRunID()
	if !m.quiet {
		verb := "copying"
		if m.dryRun {
			verb = "dry-run: nothing will be written;"
		}
		fmt.Fprintf(m.Stderr, "mailmove %s %s to %s (run %s, state %s)\n", verb, src.Describe(), dst.Describe(), runID, statePath)
	}
	if m.sharedWith != "" && !m.quiet {
		fmt.Fprintf(m.Stderr, "mailmove: another mailmove run is copying into %s now (from %s): what it copies is looked for as this run goes\n", to.User+"@"+to.Host, m.sharedWith)
	}
	var status *statusFile
	if !m.dryRun {
		status = newStatusFile(statePath, runID, src.Describe(), dst.Describe())
		obs = multi{obs, status}
	}
	sum, err = migrate.Run(ctx, src, dst, cp, migrate.Options{
		Folder:            m.folder,
		FolderMap:         folderMap,
		Spam:              spamPolicy,
		JunkFolder:        m.junkFolder,
		GuardRatio:        m.spamGuard,
		TrustHeaders:      m.spamTrust,
		KeepDuplicates:    m.keepDuplicates,
		DryRun:            m.dryRun,
		SpoolDir:          spoolDir(m.dryRun, statePath),
		Run:               runID,
		Observer:          obs,
		Keep:              migrate.DirKeeper{Dir: quarantineDir(statePath)},
		Archive:           migrate.DirKeeper{Dir: strings.TrimSuffix(statePath, ".db") + ".originals"},
		ReviewFolder:      m.reviewFolder,
		EncodeHeaders:     m.encodeHeaders,
		FoldLines:         m.foldLines,
		CloseParts:        m.closeParts,
		RecopyMissing:     m.recopyMissing,
		SharedDestination: m.sharedWith != "",
		Connections:       appendConnections(m.connections, m.maxConns, to.Host),
	})
	var until *untilReached
	if errors.As(context.Cause(ctx), &until) && errors.Is(err, context.Canceled) {
		err = until
	}
	if m.deleteAfter && err == nil {
		err = m.deleteVerified(ctx, src, dst, cp)
	}
	if status != nil {
		status.finish(sum, err)
	}
	if ferr := finish(sum, err); ferr != nil && err == nil {
		err = ferr
	}
	if q, ok := src.(*migrate.QuarantineSource); ok && !m.dryRun {
		n, qerr := q.Release(cp)
		fmt.Fprintf(m.Stdout, "%d message(s) left the quarantine\n", n)
		if qerr != nil && err == nil {
			err = qerr
		}
	}
	return sum, err
}

// listQuarantine prints what could not be copied, and why.
func (m *Main) listQuarantine(statePath string) error {
	dir := quarantineDir(statePath)
	items, err := migrate.ListQuarantine(dir)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintf(m.Stdout, "the quarantine (%s) is empty\n", dir)
		return nil
	}
	fmt.Fprintf(m.Stdout, "%d message(s) in %s; fix the cause, then: mailmove quarantine retry (same --from, --to)\n", len(items), dir)
	for _, it := range items {
		fmt.Fprintf(m.Stdout, "\n%s  %s  %s\n  folder: %s\n  reason: %s\n  file:   %s\n",
			it.Record.At.Local().Format("2006-01-02 15:04"), it.Record.ID, human(it.Record.Size), it.Record.Folder, it.Record.Reason, it.File)
	}
	return nil
}

// source opens the source endpoint and returns the folder map to use with it.
func (m *Main) source(ctx context.Context, from Endpoint) (migrate.Source, map[string]string, error) {
	if from.Type == "mbox" {
		format, err := mbox.ParseFormat(cmp.Or(m.mboxFormat, "auto"))
		if err != nil {
			return nil, nil, usagef("--mbox-format: %v", err)
		}
		st, err := os.Stat(from.Path)
		if err != nil {
			return nil, nil, usagef("--from mbox:%s: %v", from.Path, err)
		}
		folderMap := maps.Clone(m.folderMap)
		if !st.IsDir() && m.folder != "" {
			// One file: --folder says where it goes.
			folderMap[filepath.Base(from.Path)] = m.folder
		}
		return mbox.NewSource(mbox.Config{Path: from.Path, Format: format, IncludeDeleted: m.includeDeleted}), folderMap, nil
	}
	var pass string
	if from.Auth == "" {
		var err error
		if pass, err = from.password(ctx, m.envVar("MAILMOVE_FROM_PASSWORD")); err != nil {
			return nil, nil, err
		}
	}
	fromTLS, err := m.tlsConfig(from.Host)
	if err != nil {
		return nil, nil, err
	}
	maxMessage, _ := parseSize(m.maxMessage)
	flags := []string{`\Seen`}
	if m.unseen {
		flags = nil
	}
	return pop3.NewSource(pop3.SourceConfig{
		Addr: from.addr(), User: from.User,
		Password:   func() (string, error) { return pass, nil },
		Options:    pop3.Options{TLS: pop3Mode(from.TLS), TLSConfig: fromTLS, Timeout: m.timeout, Debug: m.wireLog(from.User, pass)},
		Flags:      flags,
		Mechanism:  from.Auth,
		Token:      func() (string, error) { return from.token(ctx) },
		MaxMessage: maxMessage,
	}), m.folderMap, nil
}

// undo removes what one run appended, after a confirmation.
func (m *Main) undo(ctx context.Context, dst migrate.Destination, cp migrate.Checkpoint) error {
	runs, err := migrate.Runs(cp)
	if err != nil {
		return err
	}
	listRuns := func() {
		if len(runs) == 0 {
			fmt.Fprintln(m.Stdout, "no run of this state has copied anything that is still recorded as copied")
			return
		}
		fmt.Fprintln(m.Stdout, "runs of this state (latest first):")
		for _, r := range runs {
			fmt.Fprintf(m.Stdout, "  %s  %s  %d message(s) copied\n", r.ID, r.Last.Local().Format("2006-01-02 15:04"), r.Copied)
		}
	}
	if m.undoRun == "" {
		listRuns()
		if len(runs) == 0 {
			return nil // nothing to undo: not a mistake
		}
		return usagef("undo needs --run ID: one of the runs above")
	}
	if !slices.ContainsFunc(runs, func(r migrate.RunInfo) bool { return r.ID == m.undoRun }) {
		listRuns()
		return usagef("undo --run %s: this state knows no such run with messages to remove", m.undoRun)
	}
	plan, err := migrate.PlanUndo(cp, m.undoRun)
	if err != nil {
		return err
	}
	if plan.Count() == 0 {
		fmt.Fprintf(m.Stdout, "run %s appended nothing that can be removed safely (%d without a UID from the server)\n", m.undoRun, plan.NoUID)
		return nil
	}
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(plan.Folders)) {
		parts = append(parts, fmt.Sprintf("%s %d", f, len(plan.Folders[f])))
	}
	fmt.Fprintf(m.Stdout, "run %s appended %d message(s) to %s: %s\n", m.undoRun, plan.Count(), dst.Describe(), strings.Join(parts, ", "))
	if plan.NoUID > 0 {
		fmt.Fprintf(m.Stdout, "%d more cannot be removed safely: the server did not say their UIDs\n", plan.NoUID)
	}
	if m.dryRun {
		fmt.Fprintln(m.Stdout, "dry-run: nothing removed")
		return nil
	}
	if !m.yes {
		fmt.Fprint(m.Stdout, "Remove them from the destination? Type yes to go on: ")
		in := m.Stdin
		if in == nil {
			in = os.Stdin
		}
		if answer := firstLine(readSome(in)); strings.TrimSpace(strings.ToLower(answer)) != "yes" {
			return usagef("undo not confirmed: nothing removed")
		}
	}
	n, refused, err := migrate.Undo(ctx, dst, cp, plan)
	fmt.Fprintf(m.Stdout, "removed %d message(s); the next run copies them again\n", n)
	if len(refused) > 0 {
		fmt.Fprintf(m.Stdout, "%d left in place: nothing proves their UID is the message mailmove copied:\n", len(refused))
		for _, r := range refused {
			fmt.Fprintf(m.Stdout, "  %s in %s (UID %d): %s\n", r.ID, r.Folder, r.UID, r.Reason)
		}
		if err == nil {
			err = &incomplete{n: len(refused), text: fmt.Sprintf("undo left %d message(s) it could not confirm as its own", len(refused))}
		}
	}
	return err
}

func readSome(r io.Reader) []byte {
	b := make([]byte, 256)
	n, _ := r.Read(b)
	return b[:n]
}

// deleteVerified runs --delete-after-verify.
func (m *Main) deleteVerified(ctx context.Context, src migrate.Source, dst migrate.Destination, cp migrate.Checkpoint) error {
	rec, deleted, err := migrate.DeleteVerified(ctx, src, dst, cp, 50, m.dryRun)
	unverified := rec.Listed - rec.Skipped - len(rec.VerifiedEntries)
	switch {
	case m.dryRun:
		fmt.Fprintf(m.Stdout, "--delete-after-verify: would delete %d message(s) from %s, verified at the destination now; %d would stay (%d not verified there yet: a real run deletes what it copies and verifies; %d kept on purpose)\n",
			len(deleted), src.Describe(), unverified+len(rec.Stay), unverified, len(rec.Stay))
		for _, e := range deleted {
			fmt.Fprintf(m.Stdout, "  would delete %s\n", e.ID)
		}
	default:
		fmt.Fprintf(m.Stdout, "--delete-after-verify: deleted %d message(s) from %s after verifying each at the destination; %d stay on the server (%d not verified, %d kept on purpose)\n",
			len(deleted), src.Describe(), rec.Listed-rec.Skipped-len(deleted), rec.Listed-rec.Skipped-len(deleted)-len(rec.Stay), len(rec.Stay))
	}
	for _, s := range rec.Stay {
		fmt.Fprintf(m.Stdout, "  stays: %s: %s\n", s.ID, s.Reason)
	}
	return err
}

// stateError is a state file that cannot be created or written.
type stateError struct {
	path string
	err  error
}

func (e *stateError) Error() string {
	return fmt.Sprintf("cannot write the state file %s: %v", e.path, e.err)
}
func (e *stateError) Unwrap() error { return e.err }

// incomplete is a verification that found messages missing: exit 3.
type incomplete struct {
	n    int
	text string // when it is not about source messages missing
}

func (e *incomplete) Error() string {
	if e.text != "" {
		return e.text
	}
	return fmt.Sprintf("%d source message(s) are not at the destination, or not as they were sent", e.n)
}

// verify prints the reconciliation of source, state and destination.
func (m *Main) verify(ctx context.Context, src migrate.Source, dst migrate.Destination, cp migrate.Checkpoint) error {
	if m.reportPath != "" {
		// Known unwritable before the work, not after it.
		if err := writePrivate(m.reportPath, nil); err != nil {
			return usagef("--report: %v", err)
		}
	}
	rec, err := migrate.Verify(ctx, src, dst, cp)
	if err != nil {
		return err
	}
	w := m.Stdout
	fmt.Fprintf(w, "%s → %s\n%-28s  %8s  %8s  %8s\n", rec.Source, rec.Destination, "FOLDER", "SOURCE", "RECORDED", "PRESENT")
	for _, f := range rec.Folders {
		name := f.Folder
		if name == "" {
			name = "(not copied)"
		}
		fmt.Fprintf(w, "%-28s  %8d  %8d  %8d\n", clipRunes(name, 28), f.Source, f.Recorded, f.Present)
	}
	fmt.Fprintf(w, "%d listed, %d at the destination, %d missing, %d skipped on purpose (deleted in the old client)\n",
		rec.Listed, rec.Verified, len(rec.Missing), rec.Skipped)
	for _, x := range rec.Missing {
		fmt.Fprintf(w, "  missing %s: %s\n", x.ID, x.Reason)
	}
	if m.content {
		// Every message mailmove copied, fetched and compared with what it
		// sends for the source's message today.
		if err := migrate.VerifyContent(ctx, src, dst, cp, &rec, ""); err != nil {
			return err
		}
		fmt.Fprintf(w, "content: %d copied message(s) fetched and compared byte for byte with what mailmove sends for the source's message (its bytes with CRLF line endings, repaired as recorded): %d identical, %d differ\n",
			rec.ContentChecked, rec.ContentSame, len(rec.Differences))
		for _, d := range rec.Differences {
			if d.Diff != nil {
				fmt.Fprintf(w, "  differs %s in %s (UID %d): %s\n", d.ID, d.Folder, d.UID, d.Diff)
			} else {
				fmt.Fprintf(w, "  %s in %s (UID %d): %s\n", d.ID, d.Folder, d.UID, d.Reason)
			}
		}
	}
	if m.reportPath != "" {
		data, _ := json.MarshalIndent(rec, "", "  ")
		if err := writePrivate(m.reportPath, append(data, '\n')); err != nil {
			return err
		}
	}
	if !rec.Complete() || len(rec.Differences) > 0 {
		return &incomplete{n: len(rec.Missing) + len(rec.Differences)}
	}
	if m.content {
		fmt.Fprintln(w, "complete: every source message is at the destination, and every one mailmove copied is as it sent it")
		return nil
	}
	fmt.Fprintln(w, "complete: every source message is at the destination")
	return nil
}

// writePrivate writes a file readable by its owner only.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// envVar is the variable a password may come from; none for a batch job,
// whose mailboxes each have their own.
func (m *Main) envVar(name string) string {
	if m.batchJob {
		return ""
	}
	return name
}

// wireLog is where --debug-wire output goes: stderr, through a redactor
// that knows the password it must hide.
func (m *Main) wireLog(user, pass string) io.Writer {
	if !m.debugWire {
		return nil
	}
	m.wireOnce.Do(func() { m.wire = &lockedWriter{w: m.Stderr} })
	return migrate.Redactor(m.wire, user, pass)
}

// lockedWriter serialises the lines of the redactors of both servers and of
// the parallel append connections.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// untilReached is the --until time arriving: a clean stop, like Ctrl-C.
type untilReached struct{ at string }

func (u *untilReached) Error() string { return "reached --until " + u.at }
func (u *untilReached) Is(target error) bool {
	return target == context.Canceled
}

// untilTime is the next time of day HH:MM after now (local time).
func untilTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("15:04", s, now.Location())
	if err != nil {
		return time.Time{}, fmt.Errorf("want HH:MM, got %q", s)
	}
	at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
	if !at.After(now) {
		at = at.AddDate(0, 0, 1)
	}
	return at, nil
}

// parseRate reads --rate: "5" (messages per second), "2MB" (bytes per
// second, with K, M or G, optionally "/s"), or both separated by a comma.
func parseRate(s string) (msgs, bytes float64, err error) {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(part)), "/S")
		if part == "" {
			continue
		}
		if n, unit, ok := byteRate(part); ok {
			bytes = n * unit
			continue
		}
		n, e := strconv.ParseFloat(part, 64)
		if e != nil || n <= 0 {
			return 0, 0, fmt.Errorf("want messages per second (5), bytes per second (2MB) or both (5,2MB), got %q", s)
		}
		msgs = n
	}
	if msgs < 0 || bytes < 0 {
		return 0, 0, fmt.Errorf("rates must be positive")
	}
	return msgs, bytes, nil
}

// parseSize reads a size: "2G", "500MB", "1048576"; "" is 0 (the default).
func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return 0, nil
	}
	if n, unit, ok := byteRate(s); ok {
		return int64(n * unit), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a size such as 2G, 500M or a number of bytes, got %q", s)
	}
	return n, nil
}

// byteRate reads "2MB", "512K", "100B".
func byteRate(s string) (float64, float64, bool) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			if n, err := strconv.ParseFloat(num, 64); err == nil && n > 0 {
				return n, u.mult, true
			}
		}
	}
	return 0, 0, false
}

// quarantineDir holds, beside the state, the messages that could not be
// copied: NAME.eml and NAME.json with the reason.
func quarantineDir(statePath string) string {
	return strings.TrimSuffix(statePath, ".db") + ".quarantine"
}

func pop3Mode(s string) pop3.TLSMode {
	switch s {
	case "starttls":
		return pop3.TLSStartTLS
	case "none":
		return pop3.TLSNone
	}
	return pop3.TLSImplicit
}

func imapMode(s string) imap.TLSMode {
	switch s {
	case "starttls":
		return imap.TLSStartTLS
	case "none":
		return imap.TLSNone
	}
	return imap.TLSImplicit
}

func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// spoolDir keeps large messages beside the state (owner-only), in a
// directory of this state's own: the run, which holds the state's lock,
// empties it first of what a killed run left there. A dry-run, which may
// have no state directory, uses the system's temporary directory.
func spoolDir(dryRun bool, statePath string) string {
	if dryRun {
		return ""
	}
	dir := strings.TrimSuffix(statePath, ".db") + ".spool"
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o700)
	return dir
}

// providerCaps are the simultaneous IMAP connections a provider allows one
// account; more get refused, sometimes with a temporary lock.
var providerCaps = map[string]int{
	"imap.gmail.com":      15,
	"imap.googlemail.com": 15,
}

// appendConnections is how many connections append in parallel: wanted,
// within the cap (given, else the provider's), which also counts the one
// connection that lists folders and checks for messages already there.
func appendConnections(wanted, maxConns int, host string) int {
	limit := maxConns
	if limit == 0 {
		limit = providerCaps[strings.ToLower(host)]
	}
	if limit > 0 {
		wanted = min(wanted, limit-1)
	}
	return max(wanted, 0)
}

// fileList is a flag that may be given more than once.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ", ") }

func (f *fileList) Set(v string) error {
	*f = append(*f, v)
	return nil
}
