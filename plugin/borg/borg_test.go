package borg

import (
	"errors"
	osexec "os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/internal/plugintest"
)

func TestIdentity(t *testing.T) {
	p := &Plugin{}
	for _, tc := range []struct {
		loc    string
		shared bool
		want   string
	}{
		// local
		{"/srv/borg/photos", false, "borg+local://node1/srv/borg/photos"},
		{"/srv/borg/photos/", true, "borg+local:///srv/borg/photos"},
		{"/srv/./borg//photos", false, "borg+local://node1/srv/borg/photos"},
		{"photos", false, "borg+local://node1/work/photos"},
		{"../photos", false, "borg+local://node1/photos"},
		{"file:///srv/borg/photos", false, "borg+local://node1/srv/borg/photos"},
		{"photos/2024:old", false, "borg+local://node1/work/photos/2024:old"}, // ':' after '/' is no host
		{"user@host", false, "borg+local://node1/work/user@host"},             // no ':' is no host
		// absolute remote paths: the user does not matter
		{"backup@nas:/srv/borg/photos", false, "borg+ssh://nas/srv/borg/photos"},
		{"nas:/srv/borg/photos", false, "borg+ssh://nas/srv/borg/photos"},
		{"ssh://backup@NAS/srv/borg/photos/", false, "borg+ssh://nas/srv/borg/photos"},
		{"ssh://backup@nas:22/srv/borg/photos", false, "borg+ssh://nas/srv/borg/photos"},
		{"ssh://backup@nas:2222/srv/borg/photos", false, "borg+ssh://nas:2222/srv/borg/photos"},
		{"ssh://nas//srv/borg", false, "borg+ssh://nas/srv/borg"},
		{"ssh://u@nas/~/../srv/borg", false, "borg+ssh://nas/srv/borg"}, // borg normalizes this to /srv/borg
		{"[2001:DB8::1]:/srv/borg", false, "borg+ssh://[2001:db8::1]/srv/borg"},
		{"ssh://u@[2001:db8::1]:2222/srv/borg", false, "borg+ssh://[2001:db8::1]:2222/srv/borg"},
		// relative to the login user's home: the user stays, as ~user
		{"backup@nas:photos", false, "borg+ssh://nas/~backup/photos"},
		{"backup@nas:./photos/", false, "borg+ssh://nas/~backup/photos"},
		{"backup@nas:~/photos", false, "borg+ssh://nas/~backup/photos"},
		{"backup@nas:~", false, "borg+ssh://nas/~backup"},
		{"ssh://backup@nas/./photos", false, "borg+ssh://nas/~backup/photos"},
		{"ssh://backup@nas/~/photos", false, "borg+ssh://nas/~backup/photos"},
		{"ssh://backup@nas:2222/~/photos", false, "borg+ssh://nas:2222/~backup/photos"},
		{"ssh://backup@nas/./../photos", false, "borg+ssh://nas/~backup/photos"}, // borg clamps at "/./"
		{"backup@nas:../photos", false, "borg+ssh://nas/~backup/../photos"},      // the scp form does not
		{"backup@[::1]:photos", false, "borg+ssh://[::1]/~backup/photos"},
		// in a named user's home: whoever logs in
		{"other@nas:~backup/photos", false, "borg+ssh://nas/~backup/photos"},
		{"nas:~backup/photos", false, "borg+ssh://nas/~backup/photos"},
		{"ssh://other@nas/~backup/photos/", false, "borg+ssh://nas/~backup/photos"},
	} {
		got, err := plugin.IdentityOf(p, plugin.Repository{Name: "r", BaseDir: "/work", Location: tc.loc, Host: "Node1", SharedLocal: tc.shared})
		if err != nil || got != tc.want {
			t.Errorf("Identity(%q) = %q, %v; want %q", tc.loc, got, err, tc.want)
		}
	}
}

func TestIdentityErrors(t *testing.T) {
	p := &Plugin{}
	for _, tc := range []struct{ loc, want string }{
		{"", "empty"},
		{"nas:photos", "login user"},
		{"ssh://nas/./photos", "login user"},
		{"ssh://nas/~/photos", "login user"},
		{"ssh://u:s3cr3t@nas/srv/borg", "no password"},
		{"ssh://u@nas", "ssh://[user@]host[:port]/path"},
		{"ssh://u@nas:port/srv", "port"},
		{"ssh://u@[::1/srv", "ssh://[user@]host[:port]/path"},
		{"ssh://u@[nas]/srv", "host"},
		{"file://nas/srv/borg", "file:///absolute/path"},
		{"sftp://nas/srv/borg", "ssh:// and file://"},
		{"nas:/srv/borg::archive-1", "archive"},
		{"/srv/borg::archive-1", "archive"},
		{"~/borg", "'~'"},
	} {
		got, err := plugin.IdentityOf(p, plugin.Repository{Name: "r", BaseDir: "/work", Location: tc.loc, Host: "node1"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Identity(%q) = %q, %v; want error containing %q", tc.loc, got, err, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), `borg: repository "r"`) {
			t.Errorf("Identity(%q) error %q does not name the tool and repository", tc.loc, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Identity(%q) error %q leaks the password", tc.loc, err)
		}
	}
}

func TestModeBorg(t *testing.T) {
	// Want "" means an error: the mode cannot be inferred.
	plugintest.CheckModes(t, &Plugin{}, map[string]consullock.Mode{
		"borg create ::{now} /data":                    consullock.Exclusive,
		"borg --lock-wait 60 create --stats ::a /d":    consullock.Exclusive,
		"borg --lock-wait=60 --progress create ::a /d": consullock.Exclusive,
		"borg --rsh /usr/bin/ssh prune --keep-daily 7": consullock.Exclusive,
		"borg --remote-path borg1 compact":             consullock.Exclusive,
		"borg --upload-ratelimit 100 create ::a /d":    consullock.Exclusive,
		"borg -v --show-rc delete ::old":               consullock.Exclusive,
		"borg rename ::a b":                            consullock.Exclusive,
		"borg recreate --exclude x":                    consullock.Exclusive,
		"borg check":                                   consullock.Exclusive,
		"borg check --repair":                          consullock.Exclusive,
		"borg upgrade --tam":                           consullock.Exclusive,
		"borg init -e repokey":                         consullock.Exclusive,
		"borg break-lock":                              consullock.Exclusive,
		"borg with-lock rsync -a repo/ copy/":          consullock.Exclusive,
		"borg config additional_free_space 2G":         consullock.Exclusive,
		"borg import-tar ::a x.tar":                    consullock.Exclusive,
		"borg key change-passphrase":                   consullock.Exclusive,
		"borg key import :: key.txt":                   consullock.Exclusive,
		"borg key export :: key.txt":                   consullock.Shared,
		"borg key --debug export --paper":              consullock.Shared,
		"borg key":                                     consullock.Exclusive,
		"borg benchmark crud :: /tmp":                  consullock.Exclusive,
		"borg benchmark cpu":                           consullock.Shared,
		"borg list":                                    consullock.Shared,
		"borg --log-json list --json":                  consullock.Shared,
		"borg info ::a":                                consullock.Shared,
		"borg extract ::a home/u":                      consullock.Shared,
		"borg diff ::a b":                              consullock.Shared,
		"borg export-tar ::a out.tar":                  consullock.Shared,
		"borg mount :: /mnt":                           consullock.Shared,
		"borg --lock-w 60 list":                        consullock.Shared, // argparse abbreviation, unknown here
		"borg --critical list":                         consullock.Shared,
		"/usr/bin/borg create ::a /d":                  consullock.Exclusive,
		"borg frobnicate":                              consullock.Exclusive,
		"borg repo-create":                             consullock.Exclusive, // borg 2: unknown here, safe default
		"borg":                                         "",
		"borg --lock-wait 5":                           "",
		"borg -V":                                      "",
		"borgmatic create":                             "",
		"sh -c borg list":                              "",
		"":                                             "",
	})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code    int
		name    string
		success bool
	}{
		{0, plugin.NameSuccess, true},
		{1, plugin.NameWarning, true},
		{2, plugin.NameError, false},
		{3, "cancelled by user", false},
		{12, "repository check needed", false},
		{13, plugin.NameNoRepository, false},
		{15, "invalid repository", false},
		{17, "object not found", false},
		{52, plugin.NameWrongPassword, false},
		{51, "passcommand failed", false},
		{70, plugin.NameNativeLockBusy, false},
		{71, "native lock error", false},
		{72, "native lock failed", false},
		{73, plugin.NameNativeLockBusy, false},
		{74, "native lock not held", false},
		{75, "native lock held by another", false},
		{80, "connection closed", false},
		{90, "integrity error", false},
		{99, plugin.NameError, false}, // unlisted error code
		{100, "warning: file changed", true},
		{105, "warning: permission denied", true},
		{107, "warning: file not found", true},
		{120, plugin.NameWarning, true}, // unlisted warning code
		{127, plugin.NameWarning, true},
		{128, plugin.NameError, false},
		{130, plugin.NameInterrupted, false},
		{143, "killed by signal 15", false},
		{-1, plugin.NameError, false},
	} {
		if got := (&Plugin{}).Classify(tc.code); got.Name != tc.name || got.Success != tc.success {
			t.Errorf("Classify(%d) = %+v, want {%q %v}", tc.code, got, tc.name, tc.success)
		}
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    plugin.Repository
		want []string
	}{
		{
			"password file becomes a quoted passcommand",
			plugin.Repository{Location: "backup@nas:/srv/borg", PasswordFile: "/secrets/borg pass"},
			[]string{"BORG_EXIT_CODES=modern", "BORG_PASSCOMMAND=cat -- '/secrets/borg pass'", "BORG_REPO=backup@nas:/srv/borg"},
		},
		{
			"password command as written",
			plugin.Repository{Location: "/srv/borg", PasswordCommand: "pass show borg"},
			[]string{"BORG_EXIT_CODES=modern", "BORG_PASSCOMMAND=pass show borg", "BORG_REPO=/srv/borg"},
		},
		{
			"no password source",
			plugin.Repository{Location: "/srv/borg"},
			[]string{"BORG_EXIT_CODES=modern", "BORG_REPO=/srv/borg"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&Plugin{}).Env(tc.r); !slices.Equal(got, tc.want) {
				t.Fatalf("Env = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPassCommandQuoting lets a POSIX shell split the generated
// BORG_PASSCOMMAND (borg uses Python's shlex.split, which follows the same
// quoting rules) and checks that cat gets exactly the path.
func TestPassCommandQuoting(t *testing.T) {
	for _, path := range []string{
		"/secrets/pw",
		"/secrets/borg pass",
		"/secrets/it's",
		`/secrets/a"b\c$HOME` + "`x`",
		"/secrets/'''",
		"-rf",
	} {
		env := (&Plugin{}).Env(plugin.Repository{Location: "/r", PasswordFile: path})
		var cmd string
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "BORG_PASSCOMMAND="); ok {
				cmd = v
			}
		}
		sh := osexec.Command("sh", "-c", `eval "set -- $1"; printf '%s\0' "$@"`, "sh", cmd)
		out, err := sh.Output()
		if err != nil {
			t.Fatalf("sh splitting %q: %v", cmd, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if want := []string{"cat", "--", path}; !slices.Equal(got, want) {
			t.Errorf("BORG_PASSCOMMAND %q splits into %q, want %q", cmd, got, want)
		}
	}
}

func TestUnlockCommand(t *testing.T) {
	for policy, want := range map[string][]string{
		"":      nil,
		"never": nil,
		"stale": nil, // borg 1.x has no stale-only unlock
		"all":   {"borg", "break-lock"},
	} {
		if got := (&Plugin{}).UnlockCommand(policy); !slices.Equal(got, want) {
			t.Errorf("UnlockCommand(%q) = %q, want %q", policy, got, want)
		}
	}
}

func TestTargets(t *testing.T) {
	for cmd, want := range map[string][]string{
		"borg create /srv/b::a /data":             {"/srv/b"},
		"borg create ::a /data":                   nil,
		"borg prune --keep-last 3 /srv/b":         {"/srv/b"},
		"borg prune --keep-last 3":                nil,
		"borg prune -d 7 /srv/b":                  {"/srv/b"},
		"borg --lock-wait 5 list /srv/b":          {"/srv/b"},
		"borg create ssh://h/srv/b::x /d":         {"ssh://h/srv/b"},
		"borg with-lock /srv/b rsync -a /x h:/y":  {"/srv/b"},
		"borg mount /srv/b /mnt":                  {"/srv/b"},
		"borg extract ::a home/u":                 nil,
		"borg create --exclude /x/y ::a /data":    nil,
		"borg create -e /x ::a /data":             nil,
		"borg delete u@h:/srv/b::old":             {"u@h:/srv/b"},
		"borg create --comment c::d ::a /data":    nil,
		"borg -- create /srv/b::a /data":          {"/srv/b"},
		"borg create /srv/b::a -- /data::notrepo": {"/srv/b", "/data"},
		"borg with-lock /srv/b rsync -a /x /y":    {"/srv/b"},
		"borg with-lock /srv/b borg list /srv/c":  {"/srv/b"}, // the wrapped command is borg's business
		"borg with-lock /srv/b cp /srv/c::a /y":   {"/srv/b"}, // even where a word looks like REPO::ARCHIVE
		"borg init -e repokey /srv/b":             {"/srv/b"}, // -e's value is not the repository
		"borg init --encryption=repokey /srv/b":   {"/srv/b"},
		"borg check --max-duration 60 /srv/b":     {"/srv/b"},
		"borg prune --keep-within 2d u@h:rel":     {"u@h:rel"},
		"borg break-lock /srv/b":                  {"/srv/b"},
		"borg list /srv/b::a":                     {"/srv/b"},
		"borg diff /srv/b::a b":                   {"/srv/b"},
		"borg rename /srv/b::a b":                 {"/srv/b"},
		"borg info":                               nil,
		"borg list --short":                       nil,
		"borg extract /srv/b::a home/u":           {"/srv/b"},
		"borg export-tar /srv/b::a /tmp/a.tar":    {"/srv/b"},
		"borg create ::a /srv/x":                  nil, // a source path is no repository
		"borg create ::a /srv/b::x":               {"/srv/b"},
		"/usr/bin/borg list /srv/b":               {"/srv/b"},
		"borg --lock-w 5 list /srv/b":             {"/srv/b"}, // abbreviation: 5 is a value
		"borg":                                    nil,
		"borg --lock-wait 5":                      nil,
		"borg -V":                                 nil,
	} {
		got, err := (&Plugin{}).Targets(strings.Fields(cmd))
		var locs []string
		for _, g := range got {
			locs = append(locs, g.Location)
		}
		if err != nil || !slices.Equal(locs, want) {
			t.Errorf("Targets(%q) = %q, %v; want %q", cmd, locs, err, want)
		}
	}
	for _, args := range [][]string{
		{"bash", "-c", "borg create ::a /d"},
		{"bash", "-c", "borg"},
		{"borgmatic", "create"},
		nil,
	} {
		if got, err := (&Plugin{}).Targets(args); !errors.Is(err, plugin.ErrOpaque) || got != nil {
			t.Errorf("Targets(%q) = %+v, %v; want ErrOpaque", args, got, err)
		}
	}
}

// A target records how the command names it, archive included, for messages.
func TestTargetsArg(t *testing.T) {
	for cmd, want := range map[string][]plugin.Target{
		"borg create /srv/b::a /data":     {{Location: "/srv/b", Arg: "/srv/b::a"}},
		"borg prune --keep-last 3 /srv/b": {{Location: "/srv/b", Arg: "/srv/b"}},
		"borg create ssh://h/srv/b::x /d": {{Location: "ssh://h/srv/b", Arg: "ssh://h/srv/b::x"}},
		"borg mount /srv/b /mnt":          {{Location: "/srv/b", Arg: "/srv/b"}},
	} {
		got, err := (&Plugin{}).Targets(strings.Fields(cmd))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Targets(%q) = %+v, %v; want %+v", cmd, got, err, want)
		}
	}
}

// Env's repository and password variables are ones OwnsEnv claims, so a
// job's env cannot replace them; BORG_EXIT_CODES only sets the exit-code
// style and is not.
func TestEnvIsOwned(t *testing.T) {
	p := &Plugin{}
	for _, r := range []plugin.Repository{
		{Location: "/srv/b"},
		{Location: "/srv/b", PasswordFile: "/pw"},
		{Location: "/srv/b", PasswordCommand: "pass show b"},
	} {
		env := p.Env(r)
		if !slices.IsSorted(env) {
			t.Errorf("Env(%+v) = %q, not sorted", r, env)
		}
		for _, e := range env {
			name, _, _ := strings.Cut(e, "=")
			if owned := p.OwnsEnv(name); owned != (name != "BORG_EXIT_CODES") {
				t.Errorf("Env(%+v) sets %s; OwnsEnv = %v", r, name, owned)
			}
		}
	}
}

// Without a BaseDir a relative local path is refused.
func TestRelativeWithoutBaseDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, loc := range []string{"repo", "./repo", "../repo", "photos/2024:old"} {
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h"}); err == nil || !strings.Contains(err.Error(), "relative") {
			t.Errorf("Identity(%q) without a BaseDir = %q, %v; want an error about a relative path", loc, got, err)
		}
	}
	got, err := (&Plugin{}).Identity(plugin.Repository{Location: "repo", Host: "h", BaseDir: "/etc/repolock"})
	if want := "borg+local://h/etc/repolock/repo"; err != nil || got != want {
		t.Errorf("Identity(repo) with BaseDir = %q, %v; want %q", got, err, want)
	}
	for _, loc := range []string{"/srv/b", "file:///srv/b"} {
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h"}); err != nil || got != "borg+local://h/srv/b" {
			t.Errorf("Identity(%q) without a BaseDir = %q, %v", loc, got, err)
		}
	}
	// Remote paths relative to a home directory do not need a BaseDir.
	if got, err := (&Plugin{}).Identity(plugin.Repository{Location: "u@nas:rel", Host: "h"}); err != nil || got != "borg+ssh://nas/~u/rel" {
		t.Errorf("Identity(u@nas:rel) without a BaseDir = %q, %v", got, err)
	}
}

// borg reads no second repository (borg 1.x has no copy), but lists the
// locks of a local repository from its folder (locks.go).
func TestOptionalInterfaces(t *testing.T) {
	var p plugin.Plugin = &Plugin{}
	if _, ok := p.(plugin.Copier); ok {
		t.Error("borg implements plugin.Copier")
	}
	if _, ok := p.(plugin.LockLister); !ok {
		t.Error("borg does not implement plugin.LockLister")
	}
}

func TestOwnsEnv(t *testing.T) {
	for name, want := range map[string]bool{"BORG_REPO": true, "BORG_PASSPHRASE": true, "BORG_PASSCOMMAND": true,
		"BORG_PASSPHRASE_FD": true, "BORG_NEW_PASSPHRASE": true, "BORG_OTHER_REPO": true,
		"BORG_RSH": false, "BORG_BASE_DIR": false, "BORG_HOSTNAME_IS_UNIQUE": false,
		"BORG_EXIT_CODES": false, "BORG_REPO_X": false, "REPO": false, "borg_repo": false, "": false} {
		if got := (&Plugin{}).OwnsEnv(name); got != want {
			t.Errorf("OwnsEnv(%s) = %v, want %v", name, got, want)
		}
	}
}

// Review findings: forms that named another repository without being seen.
func TestTargetsHidden(t *testing.T) {
	for cmd, want := range map[string]string{
		"borg key change-passphrase /srv/other":          "/srv/other",
		"borg key export /srv/other /tmp/key":            "/srv/other",
		"borg config /srv/other append_only 0":           "/srv/other",
		"borg benchmark crud /srv/other /tmp":            "/srv/other",
		"borg prune --keep-daily 7 --save-space /srv/o2": "/srv/o2",
		"borg prune --keep-d 7 /srv/o3":                  "/srv/o3",
		"borg prune --keep-13weekly 4 /srv/o4":           "/srv/o4",
	} {
		got, err := (&Plugin{}).Targets(strings.Fields(cmd))
		if err != nil || len(got) != 1 || got[0].Location != want {
			t.Errorf("Targets(%q) = %+v, %v; want %s", cmd, got, err, want)
		}
	}
	if got, _ := (&Plugin{}).Targets(strings.Fields("borg config append_only 0")); len(got) != 0 {
		t.Errorf("borg config without a repository: %+v", got)
	}
}
