package migrate

import "testing"

func TestPlanFolder(t *testing.T) {
	dovecot := []Folder{
		{Name: "INBOX", Delim: '/'}, {Name: "Spam", Delim: '/', Attrs: []string{`\HasNoChildren`, `\Junk`}},
		{Name: "Sent Messages", Delim: '/', Attrs: []string{`\Sent`}}, {Name: "Trash", Delim: '/'},
	}
	courier := []Folder{{Name: "INBOX", Delim: '.'}, {Name: "INBOX.Sent", Delim: '.'}, {Name: "INBOX.Drafts", Delim: '.'}}
	cyrus := []Folder{{Name: "INBOX", Delim: '.'}} // Debian's defaults: nothing but the inbox
	inboxNS := Namespace{Prefix: "INBOX.", Delim: '.'}
	gmail := []Folder{
		{Name: "INBOX", Delim: '/'}, {Name: "[Gmail]", Delim: '/', Attrs: []string{`\Noselect`}},
		{Name: "[Gmail]/Spam", Delim: '/'}, {Name: "[Gmail]/Sent Mail", Delim: '/'},
	}
	for _, tc := range []struct {
		src   string
		dest  []Folder
		ns    Namespace
		fmap  map[string]string
		want  string
		wantH string
	}{
		{"Inbox", dovecot, Namespace{}, nil, "INBOX", "the inbox"},
		{"Inbox/Family", dovecot, Namespace{}, nil, "INBOX/Family", "the inbox"},
		{"Junk", dovecot, Namespace{}, nil, "Spam", `the destination's \Junk folder`},
		{"Sent", dovecot, Namespace{}, nil, "Sent Messages", `the destination's \Sent folder`},
		{"sent-mail", dovecot, Namespace{}, nil, "Sent Messages", `the destination's \Sent folder`},
		{"Trash", dovecot, Namespace{}, nil, "Trash", `an existing folder with a usual \Trash name; none has the \Trash attribute`},
		{"Drafts", dovecot, Namespace{}, nil, "Drafts", `by name; the destination has no \Drafts folder`},
		{"Courrier indésirable", dovecot, Namespace{}, nil, "Spam", `the destination's \Junk folder`},
		{"Work/Projects/Alpha", dovecot, Namespace{}, nil, "Work/Projects/Alpha", "by name"},
		{"Réunions", dovecot, Namespace{}, nil, "Réunions", "by name"},
		{"Sent", courier, inboxNS, nil, "INBOX.Sent", `an existing folder with a usual \Sent name; none has the \Sent attribute`},
		{"Work/v1.2", courier, inboxNS, nil, "INBOX.Work.v1_2", `by name; "." in names became "_"; under the personal namespace "INBOX."`},
		{"Junk", cyrus, inboxNS, nil, "INBOX.Junk", `by name; the destination has no \Junk folder; under the personal namespace "INBOX."`},
		{"Archives/2019", cyrus, inboxNS, nil, "INBOX.Archives.2019", `by name; the destination has no \Archive folder; under the personal namespace "INBOX."`},
		{"Work", cyrus, inboxNS, map[string]string{"Work": "INBOX/Old"}, "INBOX.Old", "--folder-map Work=INBOX/Old"},
		{"Work", cyrus, inboxNS, map[string]string{"Work": "inbox.Old"}, "INBOX.Old", "--folder-map Work=inbox.Old"},
		{"Junk", gmail, Namespace{}, nil, "[Gmail]/Spam", `an existing folder with a usual \Junk name; none has the \Junk attribute`},
		{"Sent", gmail, Namespace{}, nil, "[Gmail]/Sent Mail", `an existing folder with a usual \Sent name; none has the \Sent attribute`},
		{"Work/Old", dovecot, Namespace{}, map[string]string{"Work": "Archive/Work"}, "Archive/Work/Old", "--folder-map Work=Archive/Work"},
		{"Work", courier, inboxNS, map[string]string{"Work": "Archive/Work", "Work/x": "X"}, "INBOX.Archive.Work", "--folder-map Work=Archive/Work"},
		{"Work/x/y", courier, inboxNS, map[string]string{"Work": "Archive/Work", "Work/x": "X"}, "INBOX.X.y", "--folder-map Work/x=X"},
		{"Work", courier, inboxNS, map[string]string{"Work": "Sent"}, "INBOX.Sent", "--folder-map Work=Sent"},
		{"Inbox", dovecot, Namespace{}, map[string]string{"inbox": "Old mail"}, "Old mail", "--folder-map inbox=Old mail"},
		{"Workshop", dovecot, Namespace{}, map[string]string{"Work": "W"}, "Workshop", "by name"},
	} {
		p := PlanFolder(tc.src, tc.dest, tc.ns, tc.fmap)
		if p.Dest != tc.want || p.How != tc.wantH {
			t.Errorf("%q: got %q (%s), want %q (%s)", tc.src, p.Dest, p.How, tc.want, tc.wantH)
		}
	}
}

func TestQualify(t *testing.T) {
	cyrus := Namespace{Prefix: "INBOX.", Delim: '.'}
	dovecot := Namespace{Delim: '/'}
	existing := []Folder{{Name: "Shared.team", Delim: '.'}}
	for _, tc := range []struct {
		ns         Namespace
		path, want string
	}{
		{cyrus, "Orange", "INBOX.Orange"},
		{cyrus, "Old mail/2019", "INBOX.Old mail.2019"},
		{cyrus, "inbox", "INBOX"},
		{cyrus, "INBOX/Orange", "INBOX.Orange"},
		{cyrus, "Inbox.Orange", "INBOX.Orange"},
		{cyrus, "Shared/team", "Shared.team"}, // exists: taken as it is
		{dovecot, "Orange", "Orange"},
		{dovecot, "Old mail/2019", "Old mail/2019"},
		{dovecot, "INBOX/Orange", "INBOX/Orange"},
		{Namespace{}, "a/b", "a/b"},
	} {
		if got := tc.ns.Qualify(tc.path, existing); got != tc.want {
			t.Errorf("%+v %q: got %q, want %q", tc.ns, tc.path, got, tc.want)
		}
	}
}
