package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/term"

	"github.com/mailmove/mailmove/store"
)

// usageError is a mistake in the command line or the configuration: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Config is the TOML configuration file.
type Config struct {
	State          string              `toml:"state"`
	Folder         string              `toml:"folder"`
	CAFile         string              `toml:"ca_file"`
	AllowPlaintext bool                `toml:"allow_plaintext"`
	IncludeDeleted bool                `toml:"include_deleted"`
	MboxFormat     string              `toml:"mbox_format"`
	FolderMap      map[string]string   `toml:"folder_map"`
	Spam           string              `toml:"spam"`
	JunkFolder     string              `toml:"junk_folder"`
	SpamGuard      float64             `toml:"spam_guard"`
	SpamTrust      bool                `toml:"spam_trust_headers"`
	ReviewFolder   string              `toml:"review_folder"`
	EncodeHeaders  bool                `toml:"encode_headers"`
	FoldLongLines  bool                `toml:"fold_long_lines"`
	CloseMultipart bool                `toml:"close_multipart"`
	Endpoints      map[string]Endpoint `toml:"endpoints"`
}

// Endpoint is one server account, from the config file or a URL.
type Endpoint struct {
	Name            string `toml:"-"`
	Type            string `toml:"type"` // pop3, imap or mbox
	Path            string `toml:"path"` // mbox: a file or a directory of them
	Host            string `toml:"host"`
	Port            int    `toml:"port"`
	User            string `toml:"user"`
	TLS             string `toml:"tls"` // implicit, starttls or none
	PasswordFile    string `toml:"password_file"`
	PasswordCommand string `toml:"password_command"`
	URL             string `toml:"url"` // instead of type, host, port, user and tls
	// Auth is "password" (the default), or "xoauth2" or "oauthbearer" to
	// sign in with an OAuth 2.0 access token printed by TokenCommand, run
	// again at every login (a long migration outlives a one-hour token).
	Auth         string `toml:"auth"`
	TokenCommand string `toml:"token_command"`
}

func defaultConfigPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "mailmove", "config.toml")
}

func defaultStateDir() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "mailmove")
}

// loadConfig reads path; a missing file is an empty config unless the user
// named it explicitly.
func loadConfig(path string, explicit bool) (*Config, error) {
	cfg := &Config{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return cfg, nil
	}
	if err != nil {
		return nil, usagef("config: %v", err)
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, usagef("config %s: %v", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, usagef("config %s: unknown setting %q", path, un[0].String())
	}
	for name, ep := range cfg.Endpoints {
		ep.Name = name
		if ep.URL != "" {
			u, err := parseURL(ep.URL)
			if err != nil {
				return nil, usagef("config %s: endpoint %s: %v", path, name, err)
			}
			u.Name, u.PasswordFile, u.PasswordCommand = name, ep.PasswordFile, ep.PasswordCommand
			u.Auth, u.TokenCommand = ep.Auth, ep.TokenCommand
			ep = u
		}
		if err := ep.check(); err != nil {
			return nil, usagef("config %s: endpoint %s: %v", path, name, err)
		}
		cfg.Endpoints[name] = ep
	}
	return cfg, nil
}

func (e *Endpoint) check() error {
	e.Type = strings.ToLower(e.Type)
	e.TLS = strings.ToLower(e.TLS)
	if e.Type == "mbox" {
		if e.Path == "" {
			return errors.New("an mbox endpoint needs a path")
		}
		e.Path = expandHome(e.Path)
		return nil
	}
	if e.Type != "pop3" && e.Type != "imap" {
		return fmt.Errorf("type must be pop3, imap or mbox, not %q", e.Type)
	}
	switch e.TLS {
	case "":
		e.TLS = "implicit"
	case "implicit", "starttls", "none":
	default:
		return fmt.Errorf("tls must be implicit, starttls or none, not %q", e.TLS)
	}
	if e.Host == "" || e.User == "" {
		return errors.New("host and user are required")
	}
	if e.Port == 0 {
		switch {
		case e.Type == "pop3" && e.TLS == "implicit":
			e.Port = 995
		case e.Type == "pop3":
			e.Port = 110
		case e.TLS == "implicit":
			e.Port = 993
		default:
			e.Port = 143
		}
	}
	if e.Port < 1 || e.Port > 65535 {
		return fmt.Errorf("port %d out of range", e.Port)
	}
	if e.PasswordFile != "" && e.PasswordCommand != "" {
		return errors.New("give one password source: password_file or password_command, not both")
	}
	switch e.Auth = strings.ToLower(e.Auth); e.Auth {
	case "", "password":
		e.Auth = ""
	case "xoauth2", "oauthbearer":
		if e.TokenCommand == "" {
			return fmt.Errorf("auth = %q needs token_command, a command that prints an access token", e.Auth)
		}
	default:
		return fmt.Errorf("auth must be password, xoauth2 or oauthbearer, not %q", e.Auth)
	}
	return nil
}

// token runs the endpoint's token_command and returns the first line it
// prints: an OAuth 2.0 access token. It is run at every login.
func (e Endpoint) token(ctx context.Context) (string, error) {
	t, err := runSecretCommand(ctx, "token_command", e.label(), e.TokenCommand)
	return strings.TrimSpace(t), err
}

// secretTimeout bounds a password or token command: a pinentry waiting all
// night for someone to type would hang the run in silence.
var secretTimeout = 2 * time.Minute

// runSecretCommand runs a password or token command (secretTimeout at
// most, with a note on stderr while it waits) and returns the first line
// it prints, as it is (a password may end with a blank).
func runSecretCommand(ctx context.Context, what, endpoint, command string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, secretTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", command)
	cmd.Stderr = os.Stderr
	// The shell's children (a pinentry, a keyring helper) may keep its
	// output open after it is killed: stop waiting for them too.
	cmd.WaitDelay = time.Second
	killGroup(cmd)
	waiting := time.AfterFunc(5*time.Second, func() {
		fmt.Fprintf(os.Stderr, "mailmove: waiting for %s of %s (%s at most)...\n", what, endpoint, secretTimeout)
	})
	out, err := cmd.Output()
	waiting.Stop()
	if cctx.Err() == context.DeadlineExceeded {
		return "", usagef("%s for %s gave nothing in %s: stopped (does it wait for input?)", what, endpoint, secretTimeout)
	}
	if err != nil {
		return "", usagef("%s for %s failed: %v", what, endpoint, err)
	}
	if s := firstLine(out); s != "" {
		return s, nil
	}
	return "", usagef("%s for %s printed nothing", what, endpoint)
}

func (e Endpoint) addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// parseURL reads pop3://, pop3s://, imap:// and imaps:// endpoints.
func parseURL(s string) (Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		// Not quoted back: an unparseable URL may hold a password anywhere.
		return Endpoint{}, errors.New("the URL is not valid (write it as pop3s://USER@HOST[:PORT] or imaps://USER@HOST[:PORT])")
	}
	if _, has := u.User.Password(); has {
		return Endpoint{}, fmt.Errorf("a password in a URL would be visible to every user of this machine (ps, shell history): " +
			"remove it and set MAILMOVE_FROM_PASSWORD / MAILMOVE_TO_PASSWORD, or password_file or password_command in the config file, or type it when asked")
	}
	e := Endpoint{Host: u.Hostname(), User: u.User.Username()}
	switch strings.ToLower(u.Scheme) {
	case "pop3":
		e.Type, e.TLS = "pop3", "starttls"
	case "pop3s":
		e.Type, e.TLS = "pop3", "implicit"
	case "imap":
		e.Type, e.TLS = "imap", "starttls"
	case "imaps":
		e.Type, e.TLS = "imap", "implicit"
	default:
		return Endpoint{}, &schemeError{u.Scheme}
	}
	if p := u.Port(); p != "" {
		if e.Port, err = strconv.Atoi(p); err != nil {
			return Endpoint{}, fmt.Errorf("bad port %q", p)
		}
		if e.Port == 0 {
			return Endpoint{}, errors.New("port 0 is not a port (leave it out for the default)")
		}
	}
	for k, v := range u.Query() {
		// ?tls=none is how a URL asks for no TLS (with --allow-plaintext):
		// it is what mailmove writes when it names such an endpoint.
		if k != "tls" || len(v) != 1 {
			return Endpoint{}, fmt.Errorf("unknown URL parameter %q (only tls=implicit|starttls|none)", k)
		}
		e.TLS = strings.ToLower(v[0])
	}
	if e.User == "" {
		return Endpoint{}, fmt.Errorf("%s: the URL needs a user: %s://USER@%s", s, u.Scheme, u.Host)
	}
	return e, e.check()
}

// label names an endpoint for a person: its config name, else its
// account.
func (e Endpoint) label() string {
	switch {
	case e.Name != "" && e.User != "":
		return fmt.Sprintf("%s (%s@%s)", e.Name, e.User, e.Host)
	case e.User != "":
		return e.User + "@" + e.Host
	case e.Name != "":
		return e.Name
	}
	return e.Path
}

// resolve turns --from/--to into an endpoint: a URL or a config name.
func (c *Config) resolve(flagName, v string) (Endpoint, error) {
	example := "pop3s://you@pop.example.org or mbox:PATH (a local mail store)"
	schemes := "use pop3:// or pop3s:// (or mbox:PATH for a local mail store)"
	if flagName == "to" {
		example, schemes = "imaps://you@imap.example.org", "use imap:// or imaps://"
	}
	if v == "" {
		return Endpoint{}, usagef("--%s is required (a URL such as %s, or an endpoint name from the config file)", flagName, example)
	}
	if path, ok := strings.CutPrefix(v, "mbox:"); ok {
		e := Endpoint{Name: flagName, Type: "mbox", Path: strings.TrimPrefix(path, "//")}
		if err := e.check(); err != nil {
			return e, usagef("--%s: %v", flagName, err)
		}
		return e, nil
	}
	if strings.Contains(v, "://") {
		e, err := parseURL(v)
		var scheme *schemeError
		if errors.As(err, &scheme) {
			return e, usagef("--%s: unknown scheme %q: %s", flagName, scheme.scheme, schemes)
		}
		if err != nil {
			return e, usagef("--%s: %v", flagName, err)
		}
		e.Name = flagName
		return e, nil
	}
	e, ok := c.Endpoints[v]
	if !ok {
		return e, usagef("--%s %s: no such endpoint in the config file, and not a URL", flagName, v)
	}
	return e, nil
}

// password finds the endpoint's password: the environment variable first,
// then the config's password_file or password_command, then a prompt. A
// batch job passes no variable and gets no prompt: its sources are its own.
func (e Endpoint) password(ctx context.Context, envVar string) (string, error) {
	if v, ok := os.LookupEnv(envVar); ok && v != "" && envVar != "" {
		return v, nil
	}
	if e.PasswordFile != "" {
		path := expandHome(e.PasswordFile)
		data, err := os.ReadFile(path)
		if err != nil {
			return "", usagef("password_file: %v", err)
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(os.Stderr, "warning: %s can be read by other users; chmod 600 it\n", path)
		}
		return firstLine(data), nil
	}
	if e.PasswordCommand != "" {
		return runSecretCommand(ctx, "password_command", e.label(), e.PasswordCommand)
	}
	if envVar == "" {
		return "", usagef("no password source for %s on %s: give a password file or command for it", e.User, e.Host)
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		role := "source"
		if strings.Contains(envVar, "_TO_") {
			role = "destination"
		}
		fmt.Fprintf(os.Stderr, "Password of the %s account, %s %s on %s: ", role, strings.ToUpper(e.Type), e.User, e.Host)
		p, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		return string(p), nil
	}
	return "", usagef("no password for %s on %s: set %s, or password_file or password_command for it in the config file", e.User, e.Host, envVar)
}

func firstLine(b []byte) string {
	line, _, _ := bufio.NewReader(bytes.NewReader(b)).ReadLine()
	return string(line)
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		home, _ := os.UserHomeDir()
		return filepath.Join(home, p[2:])
	}
	return p
}

// stateFile names the default checkpoint for a source/destination pair.
func stateFile(from, to Endpoint) string {
	clean := func(e Endpoint) string {
		id := e.Type + "-" + e.User + "-" + e.Host + "-" + strconv.Itoa(e.Port)
		if e.Type == "mbox" {
			abs, _ := filepath.Abs(e.Path)
			sum := sha256.Sum256([]byte(abs))
			id = "mbox-" + filepath.Base(abs) + "-" + hex.EncodeToString(sum[:4])
		}
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
				return r
			}
			return '_'
		}, id)
	}
	return filepath.Join(defaultStateDir(), clean(from)+"--"+clean(to)+".db")
}

// identity names an endpoint's account for the state file and the run
// lock: the same account however it is reached over the protocol's usual
// ports (110 or 995, 143 or 993, with or without TLS). Another port is
// named: it may be another server on the same host (a tunnel, a test
// machine), with accounts of its own.
func identity(e Endpoint) string {
	if e.Type == "mbox" {
		abs, err := filepath.Abs(e.Path)
		if err != nil {
			abs = e.Path
		}
		return "mbox:" + abs
	}
	id := e.Type + ":" + e.User + "@" + strings.ToLower(e.Host)
	switch e.Port {
	case 0, 110, 995, 143, 993:
		return id
	}
	return id + store.PortSuffix + strconv.Itoa(e.Port) + ")"
}

// schemeError is a URL of a kind mailmove does not know.
type schemeError struct{ scheme string }

func (e *schemeError) Error() string {
	return fmt.Sprintf("unknown scheme %q: use pop3://, pop3s://, imap:// or imaps://", e.scheme)
}
