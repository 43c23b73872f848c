package migrate

import "testing"

func TestPlanFolder(t *testing.T) {
	dovecot := []Folder{
		{Name: "INBOX", Delim: '/'}, {Name: "Spam", Delim: '/', Attrs: []string{`\HasNoChildren`, `\Junk`}},
		{Name: "Sent Messages", Delim: '/', Attrs: []string{`\Sent`}}, {Name: "Trash", Delim: '/'},
	}
	courier := []Folder{{Name: "INBOX", Delim: '.'}, {Name: "INBOX.Sent", Delim: '.'}, {Name: "INBOX.Drafts", Delim: '.'}}
	gmail := []Folder{
		{Name: "INBOX", Delim: '/'}, {Name: "[Gmail]", Delim: '/', Attrs: []string{`\Noselect`}},
		{Name: "[Gmail]/Spam", Delim: '/'}, {Name: "[Gmail]/Sent Mail", Delim: '/'},
	}
	for _, tc := range []struct {
		src   string
		dest  []Folder
		fmap  map[string]string
		want  string
		wantH string
	}{
		{"Inbox", dovecot, nil, "INBOX", "the inbox"},
		{"Inbox/Family", dovecot, nil, "INBOX/Family", "the inbox"},
		{"Junk", dovecot, nil, "Spam", `the destination's \Junk folder`},
		{"Sent", dovecot, nil, "Sent Messages", `the destination's \Sent folder`},
		{"sent-mail", dovecot, nil, "Sent Messages", `the destination's \Sent folder`},
		{"Trash", dovecot, nil, "Trash", `an existing folder with a usual \Trash name; none has the \Trash attribute`},
		{"Drafts", dovecot, nil, "Drafts", `by name; the destination has no \Drafts folder`},
		{"Courrier indésirable", dovecot, nil, "Spam", `the destination's \Junk folder`},
		{"Work/Projects/Alpha", dovecot, nil, "Work/Projects/Alpha", "by name"},
		{"Réunions", dovecot, nil, "Réunions", "by name"},
		{"Sent", courier, nil, "INBOX.Sent", `an existing folder with a usual \Sent name; none has the \Sent attribute`},
		{"Work/v1.2", courier, nil, "Work.v1_2", `by name; "." in names became "_"`},
		{"Junk", gmail, nil, "[Gmail]/Spam", `an existing folder with a usual \Junk name; none has the \Junk attribute`},
		{"Sent", gmail, nil, "[Gmail]/Sent Mail", `an existing folder with a usual \Sent name; none has the \Sent attribute`},
		{"Work/Old", dovecot, map[string]string{"Work": "Archive/Work"}, "Archive/Work/Old", "--folder-map Work=Archive/Work"},
		{"Work", courier, map[string]string{"Work": "Archive/Work", "Work/x": "X"}, "Archive.Work", "--folder-map Work=Archive/Work"},
		{"Work/x/y", courier, map[string]string{"Work": "Archive/Work", "Work/x": "X"}, "X.y", "--folder-map Work/x=X"},
		{"Inbox", dovecot, map[string]string{"inbox": "Old mail"}, "Old mail", "--folder-map inbox=Old mail"},
		{"Workshop", dovecot, map[string]string{"Work": "W"}, "Workshop", "by name"},
	} {
		p := PlanFolder(tc.src, tc.dest, tc.fmap)
		if p.Dest != tc.want || p.How != tc.wantH {
			t.Errorf("%q: got %q (%s), want %q (%s)", tc.src, p.Dest, p.How, tc.want, tc.wantH)
		}
	}
}
