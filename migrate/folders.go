package migrate

import (
	"fmt"
	"sort"
	"strings"
)

// Special-use attributes (RFC 6154 section 2).
const (
	UseSent    = `\Sent`
	UseJunk    = `\Junk`
	UseTrash   = `\Trash`
	UseDrafts  = `\Drafts`
	UseArchive = `\Archive`
	useInbox   = "INBOX"
)

// roleNames are the folder names mail clients and providers give each role,
// lower-cased: Thunderbird's, mutt's, Outlook's, Gmail's and their French
// translations (the users this tool was written for).
var roleNames = map[string][]string{
	useInbox:   {"inbox", "mbox", "boîte de réception"},
	UseSent:    {"sent", "sent items", "sent messages", "sent mail", "sent-mail", "sent_mail", "envoyés", "éléments envoyés", "messages envoyés"},
	UseJunk:    {"junk", "spam", "junk e-mail", "junk email", "bulk mail", "courrier indésirable", "indésirables", "pourriel", "pourriels"},
	UseTrash:   {"trash", "deleted items", "deleted messages", "bin", "corbeille", "éléments supprimés"},
	UseDrafts:  {"drafts", "draft", "postponed", "brouillons"},
	UseArchive: {"archives", "archive", "all mail"},
}

// RoleOf returns the role a folder name stands for (`\Sent`, "INBOX"...), or "".
func RoleOf(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	for role, names := range roleNames {
		for _, x := range names {
			if n == x {
				return role
			}
		}
	}
	return ""
}

// FolderPlan is where one source folder goes, and why.
type FolderPlan struct {
	Source string `json:"source"`
	Dest   string `json:"destination"`
	How    string `json:"how"`
}

// Namespace is where a destination account keeps its own folders (RFC
// 2342 section 5, the first personal namespace): the prefix every folder
// mailmove creates goes under ("INBOX." on Cyrus and Courier, "" on
// Dovecot and Gmail) and the hierarchy delimiter.
type Namespace struct {
	Prefix string
	Delim  rune // 0 when the server did not say: "/" is assumed
}

func (ns Namespace) delim() string {
	if ns.Delim == 0 {
		return "/"
	}
	return string(ns.Delim)
}

// Qualify turns a folder the user named ("/" between levels, as in
// --folder and --folder-map) into the server's name for it: INBOX stays
// INBOX, a folder that exists is taken as it is, a name already under the
// personal prefix is kept, and anything else goes under the prefix. So
// "Old mail/2019" is "Old mail/2019" on Dovecot and "INBOX.Old mail.2019"
// on Cyrus.
func (ns Namespace) Qualify(path string, dest []Folder) string {
	name := strings.ReplaceAll(strings.Trim(path, "/"), "/", ns.delim())
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	for _, f := range dest {
		if f.Name == name {
			return name
		}
	}
	p := ns.Prefix
	if p == "" {
		return name
	}
	if strings.HasPrefix(strings.ToUpper(p), "INBOX") && len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
		return p + name[len(p):] // "inbox.x" is INBOX's child: INBOX is case-insensitive
	}
	if strings.HasPrefix(name, p) {
		return name
	}
	return p + name
}

// PlanFolder maps a source folder path (levels joined by "/") to a
// destination folder name:
//  1. the longest entry of folderMap (source path → destination path, "/"
//     between levels) matching the path or one of its parents;
//  2. Inbox to INBOX; Sent, Junk, Trash, Drafts, Archives (and their usual
//     other names) to the destination folder with that special-use attribute,
//     else to one with a usual name for it, else by name;
//  3. anything else by name.
//
// Levels are joined with the server's hierarchy delimiter; a delimiter inside
// a source folder's name becomes "_" so it does not create a level. A folder
// that does not exist yet is named under the personal namespace's prefix, as
// servers with an "INBOX." namespace refuse folders beside INBOX.
func PlanFolder(src string, dest []Folder, ns Namespace, folderMap map[string]string) FolderPlan {
	if ns.Delim == 0 {
		for _, f := range dest {
			if f.Delim != 0 {
				ns.Delim = f.Delim
				break
			}
		}
	}
	d := ns.delim()
	parts := strings.Split(strings.Trim(src, "/"), "/")
	plan := FolderPlan{Source: src}

	// 1. The user's map: longest source prefix wins.
	keys := make([]string, 0, len(folderMap))
	for k := range folderMap {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		kk := strings.Trim(k, "/")
		if strings.EqualFold(src, kk) || len(src) > len(kk) && strings.EqualFold(src[:len(kk)+1], kk+"/") {
			rest := parts[len(strings.Split(kk, "/")):]
			plan.Dest = joinLevels(ns.Qualify(folderMap[k], dest), rest, d)
			plan.How = fmt.Sprintf("--folder-map %s=%s", k, folderMap[k])
			return plan
		}
	}

	// 2. Roles of the top level.
	top := parts[0]
	rest := parts[1:]
	byName := ns.Prefix + clean(top, d)
	switch role := RoleOf(top); role {
	case "":
		plan.Dest, plan.How = byName, "by name"
	case useInbox:
		plan.Dest, plan.How = "INBOX", "the inbox"
	default:
		if f, ok := findUse(dest, role); ok {
			plan.Dest, plan.How = f, "the destination's "+role+" folder"
		} else if f, ok := findNamed(dest, role, ns.Prefix, d); ok {
			plan.Dest, plan.How = f, "an existing folder with a usual "+role+" name; none has the "+role+" attribute"
		} else {
			plan.Dest, plan.How = byName, "by name; the destination has no "+role+" folder"
		}
	}
	plan.Dest = joinLevels(plan.Dest, rest, d)
	if strings.Contains(src, d) && d != "/" {
		plan.How += fmt.Sprintf(`; %q in names became "_"`, d)
	}
	if ns.Prefix != "" && strings.HasPrefix(plan.Dest, ns.Prefix) && !strings.Contains(plan.How, "existing") && !strings.Contains(plan.How, "destination's") {
		plan.How += fmt.Sprintf("; under the personal namespace %q", ns.Prefix)
	}
	return plan
}

func joinLevels(base string, rest []string, d string) string {
	for _, p := range rest {
		base += d + clean(p, d)
	}
	return base
}

// clean keeps a folder level from splitting in two on the server.
func clean(level, d string) string {
	level = strings.ReplaceAll(level, d, "_")
	if strings.TrimSpace(level) == "" {
		return "_"
	}
	return level
}

func findUse(dest []Folder, use string) (string, bool) {
	for _, f := range dest {
		for _, a := range f.Attrs {
			if strings.EqualFold(a, use) {
				return f.Name, true
			}
		}
	}
	return "", false
}

// findNamed looks for an existing folder with one of the role's usual names,
// at the top level, under the personal prefix or INBOX (Courier-style
// namespaces) or under Gmail's [Gmail] parent.
func findNamed(dest []Folder, role, prefix, d string) (string, bool) {
	prefixes := []string{"", strings.ToLower(prefix), "inbox" + d, "[gmail]" + d, "[google mail]" + d}
	for _, want := range roleNames[role] {
		for _, f := range dest {
			name := strings.ToLower(f.Name)
			for _, prefix := range prefixes {
				if name == prefix+want {
					return f.Name, true
				}
			}
		}
	}
	return "", false
}
